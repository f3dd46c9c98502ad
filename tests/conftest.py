import os
import signal

import pytest
import torch
from hypothesis import settings

# CI runs the property tests on hypothesis' fixed examples, so that its result depends on the commit alone;
# local runs draw new examples each time, which is how edge cases are found.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

# The models under test are small: with two intra-op threads on a 2-core machine that is doing anything
# else, torch spends more time synchronising threads than computing (measured: 300 RealNVP steps took
# 41 s with 2 threads and 3 s with 1), so the suite runs single-threaded.
torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="no CUDA device on this machine")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def python_sigint_handler():
    """Python's own SIGINT handler (KeyboardInterrupt) for one test; a test runner's worker may have set another."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)
