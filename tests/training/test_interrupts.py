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

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert outcome == ["ran"]
