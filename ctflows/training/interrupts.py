"""Ctrl-C held back for a few statements that must not be cut in half (a parameter swap, say).

A KeyboardInterrupt can land between any two bytecodes; in the middle of exchanging a model's parameters
with their average it would leave a mix of both, which ``fit`` would then save as a checkpoint. Inside
:func:`interrupts_deferred` a SIGINT is only noted, and raised again once the block is done, through
whatever handler was in place before (Python's, which raises KeyboardInterrupt, or the user's own). Several
SIGINTs during the block reach that handler as one call, whose frame is this module's, not the block's.
"""
from __future__ import annotations

import signal
from contextlib import contextmanager
from typing import Any, Iterator

_RESTORE_ATTEMPTS = 64  # each failed attempt ran (and so used up) a pending handler of another signal that raised


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Run the block with SIGINT deferred to its end.

    Where no Python handler can be set (a thread other than the main one, a subinterpreter) or the current one
    was installed from C (``signal.getsignal`` gives None, which could not be put back), the block runs as is.
    """
    previous = signal.getsignal(signal.SIGINT)
    received: list[int] = []
    installed = False
    if previous is not None:
        try:
            signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
            installed = True
        except ValueError:  # not the main thread of the main interpreter: Python delivers no SIGINT here
            pass
    if not installed:  # (outside the except, so that the block's own errors do not chain onto that ValueError)
        yield
        return
    try:
        yield
    finally:
        _restore(previous)
        if received:
            signal.raise_signal(signal.SIGINT)  # to the previous handler, now that the block is whole


def _restore(previous: Any) -> None:
    """Put ``previous`` back as SIGINT's handler, even if handlers of other signals raise on the way.

    ``signal.signal`` first runs any pending Python handlers; one that raises (a SIGTERM handler calling
    ``sys.exit``, say) would leave the deferring handler in place for good. The first such error is raised
    once the handler is back, instead of the SIGINT held back (it takes precedence); after
    ``_RESTORE_ATTEMPTS`` failures in a row the deferring handler stays, and that first error is raised all
    the same.
    """
    error: BaseException | None = None
    for _ in range(_RESTORE_ATTEMPTS):
        try:
            signal.signal(signal.SIGINT, previous)
            break
        except BaseException as raised:  # noqa: BLE001 - re-raised below, after the restore
            error = error or raised
    if error is not None:
        raise error
