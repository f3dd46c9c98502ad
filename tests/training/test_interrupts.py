"""Ctrl-C deferred to the end of a block: the block finishes, then the interrupt arrives where it was headed."""
from __future__ import annotations

import signal
import threading

import pytest

from ctflows.training.interrupts import interrupts_deferred


def test_an_interrupt_inside_the_block_is_raised_after_it(python_sigint_handler):
    done = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts_deferred():
            signal.raise_signal(signal.SIGINT)
            done.append("rest of the block")  # still runs
        done.append("after the block")  # does not
    assert done == ["rest of the block"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_the_previous_handler_gets_the_interrupt_once_and_is_back(python_sigint_handler):
    seen = []

    def handler(signum, frame):
        seen.append(signum)

    signal.signal(signal.SIGINT, handler)
    with interrupts_deferred():
        signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGINT)
        assert seen == []
    assert seen == [signal.SIGINT] and signal.getsignal(signal.SIGINT) is handler


def test_without_an_interrupt_nothing_happens(python_sigint_handler):
    with interrupts_deferred():
        value = 1 + 1
    assert value == 2 and signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_other_threads_run_the_block_as_it_is():
    outcome = []

    def work():
        with interrupts_deferred():  # signal.signal would raise ValueError outside the main thread
            outcome.append("ran")
        try:
            with interrupts_deferred():
                raise RuntimeError("in the block")
        except RuntimeError as error:
            outcome.append(error.__context__)  # not chained onto that ValueError

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert outcome == ["ran", None]


def test_the_handler_is_back_when_the_block_raises(python_sigint_handler):
    with pytest.raises(ValueError, match="in the block"):
        with interrupts_deferred():
            raise ValueError("in the block")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_an_ignored_sigint_stays_ignored(python_sigint_handler):
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with interrupts_deferred():
        signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN  # and nothing was raised


def test_a_handler_installed_from_c_is_left_alone(python_sigint_handler, monkeypatch):
    # getsignal gives None for it; it could not be put back, so nothing is deferred
    monkeypatch.setattr(signal, "getsignal", lambda signum: None)
    done = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts_deferred():
            signal.raise_signal(signal.SIGINT)
            done.append("rest of the block")
    assert done == []


def test_nested_blocks_raise_once_at_the_outer_end(python_sigint_handler):
    done = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts_deferred():
            with interrupts_deferred():
                signal.raise_signal(signal.SIGINT)
            done.append("between the inner and the outer end")
    assert done == ["between the inner and the outer end"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_raising_handler_of_another_signal_does_not_keep_the_deferral(python_sigint_handler, monkeypatch):
    # signal.signal runs pending handlers first; one that raises must not stop SIGINT's handler coming back
    real, calls = signal.signal, []

    def signal_after_a_pending_handler_raised(signum, handler):
        calls.append(handler)
        if len(calls) == 2:  # the restore
            raise SystemExit("a SIGTERM handler's sys.exit")
        return real(signum, handler)

    monkeypatch.setattr(signal, "signal", signal_after_a_pending_handler_raised)
    with pytest.raises(SystemExit):
        with interrupts_deferred():
            pass
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_the_first_of_several_restore_errors_is_raised_and_the_restore_stops_once_it_took(python_sigint_handler, monkeypatch):
    real, calls = signal.signal, []

    def signal_with_two_pending_handlers_that_raise(signum, handler):
        calls.append(handler)
        if len(calls) == 2:
            raise SystemExit("the first")
        if len(calls) == 3:
            raise KeyError("the second")
        return real(signum, handler)

    monkeypatch.setattr(signal, "signal", signal_with_two_pending_handlers_that_raise)
    with pytest.raises(SystemExit, match="the first"):
        with interrupts_deferred():
            pass
    assert len(calls) == 4  # the deferring handler, two failed restores, the one that took; no more
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
