"""The ``ctflows`` command line: ``train``, ``compare``, ``sample``, ``evaluate`` and ``data list`` (see ``main``)."""
