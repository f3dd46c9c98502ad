"""Ctrl-C held back for a few statements that must not be cut in half (a parameter swap, say).

A KeyboardInterrupt can land between any two bytecodes; in the middle of exchanging a model's parameters
with their average it would leave a mix of both, which ``fit`` would then save as a checkpoint. Inside
:func:`interrupts_deferred` a SIGINT is only noted, and raised again once the block is done, through
whatever handler was in place before (Python's, which raises KeyboardInterrupt, or the user's own).
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Run the block with SIGINT deferred to its end; elsewhere than the main thread, run it as it is.

    (Signal handlers can only be set from the main thread, which is also the only one Python delivers
    SIGINT to, so other threads have nothing to defer.)
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:
            signal.raise_signal(signal.SIGINT)  # to the previous handler, now that the block is whole
