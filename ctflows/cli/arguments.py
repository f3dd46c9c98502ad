"""Argument types for the ``ctflows`` command and the tutorial scripts: each refuses a bad value in one line.

``type=positive_int`` and the like check a value as argparse reads it, so that ``--steps 0`` or ``--weight nan``
stops before anything is loaded or trained, with a message naming the flag, instead of a traceback from deep in
``fit`` (or, for a NaN weight, a "regularized" run that silently trained without the penalty).
"""
from __future__ import annotations

import argparse
import math
from typing import Callable, TypeVar

Number = TypeVar("Number", int, float)


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage block), pointing at ``--help``."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def checked(
    convert: Callable[[str], Number], noun: str, ok: Callable[[Number], bool], rule: str
) -> Callable[[str], Number]:
    """An argparse type: ``convert(text)`` (else "is not a ``noun``"), kept only when ``ok`` (else "must be ``rule``")."""

    def parse(text: str) -> Number:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {noun}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"must be {rule}, got {text}")
        return value

    return parse


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number ``>= minimum``."""
    return checked(int, "whole number", lambda value: value >= minimum, f"at least {minimum}")


positive_int, non_negative_int = int_at_least(1), int_at_least(0)


def positive_float(what: str) -> Callable[[str], float]:
    """An argparse type: a finite number > 0; ``what`` names it in the messages (``"number of minutes"``)."""
    return checked(float, what, lambda value: math.isfinite(value) and value > 0, f"a positive {what}")


positive_minutes, positive_number = positive_float("number of minutes"), positive_float("number")


# torch takes seeds below 2^64, and the commands derive seed + 1 and seed + 2 from it
seed_value = checked(int, "whole number", lambda value: 0 <= value < 2**63, "a whole number from 0 to 2^63 - 1")

# a decay rate; NaN fails both comparisons
open_unit_interval = checked(float, "number", lambda value: 0 < value < 1, "strictly between 0 and 1")

# a penalty weight, where 0 means none; NaN fails the comparison
non_negative_number = checked(float, "number", lambda value: math.isfinite(value) and value >= 0, "a finite number >= 0")

# a share of a budget spent warming up, or STEER's end-time jitter b (T drawn within T·(1 ± b)): 0 means none,
# while 1 would fill the whole budget with warm-up, or let T shrink to 0; NaN and infinity fail the comparisons
fraction_below_one = checked(float, "number", lambda value: 0 <= value < 1, "at least 0 and below 1")

# a share of a budget that must leave some of it (0 would train nothing) and at most all of it;
# NaN and infinity fail the comparisons
positive_fraction = checked(float, "number", lambda value: 0 < value <= 1, "above 0 and at most 1")


def tutorial_parser(
    description: str, *, quick: str = "tiny budget (used by the test suite)", data: str | None = None
) -> OneLineParser:
    """The options every tutorial script in ``examples/`` shares: ``--quick``, ``--out`` and, given a default
    density ``data``, ``--data`` among the built-in 2-D densities (the tutorials' models are 2-D)."""
    from ctflows.data import list_densities  # here, not at the top: the command's start-up needs no data module

    parser = OneLineParser(description=description)
    parser.add_argument("--quick", action="store_true", help=quick)
    if data is not None:
        parser.add_argument("--data", default=data, choices=list(list_densities(dim=2)), help=f"a built-in 2-D density (default {data})")
    parser.add_argument("--out", default="examples-output", help="folder for the figures (default examples-output)")
    return parser
