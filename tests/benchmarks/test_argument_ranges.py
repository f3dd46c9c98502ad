"""The benchmark scripts refuse an out-of-range number as argparse reads it: status 2 and one error line naming the flag."""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ["beyond_likelihood", "cnf", "cnf_profile", "discrete", "flow_matching_variance", "realnvp_defaults",
           "toy_densities"]

# script, argv, and the flag and rule that the error line names
BAD = {
    "cnf.py quality --seconds -5": ("cnf", ["quality", "--seconds", "-5"], "--seconds", "must be a positive number, got -5"),
    "cnf.py train --lr nan": ("cnf", ["train", "--lr", "nan"], "--lr", "must be a positive number, got nan"),
    "cnf.py quality --eval-n 0": ("cnf", ["quality", "--eval-n", "0"], "--eval-n", "must be at least 1, got 0"),
    "beyond_likelihood.py --fm-fraction 2": ("beyond_likelihood", ["--fm-fraction", "2"], "--fm-fraction",
                                             "must be above 0 and at most 1, got 2"),
    "discrete.py seconds --warmup 1": ("discrete", ["seconds", "--warmup", "1"], "--warmup",
                                       "must be at least 0 and below 1, got 1"),
}


class _Parsed(Exception):
    """Raised in place of running the benchmark once its command line has parsed."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        super().__init__()
        self.parser = parser


def _parse(monkeypatch, script: str, argv: list[str]) -> None:
    """Run ``script``'s main() on ``argv`` up to its parse_args (the script's own parser, nothing after it)."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    main = importlib.import_module(script).main
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, *args, **kwargs):
        original(self, *args, **kwargs)
        raise _Parsed(self)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    monkeypatch.setattr(sys, "argv", [f"{script}.py", *argv])
    main()


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_number_is_a_usage_error_before_any_work(case, monkeypatch, capsys):
    script, argv, flag, rule = BAD[case]
    with pytest.raises(SystemExit) as exit_:
        _parse(monkeypatch, script, argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2, err
    (line,) = err.splitlines()  # one line: no usage block before it
    assert f"error: argument {flag}: {rule} (see {script}.py" in line and line.endswith(" --help)"), line


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_numeric_default_passes_its_own_type(script, monkeypatch):
    # argparse applies ``type`` to string defaults only, so a default outside its type's range would go unnoticed.
    argv = {"cnf": ["table"], "discrete": ["steps"]}.get(script, [])
    with pytest.raises(_Parsed) as parsed:
        _parse(monkeypatch, script, argv)
    parsers, checked = [parsed.value.parser], 0
    while parsers:
        for action in parsers.pop()._actions:
            if isinstance(action, argparse._SubParsersAction):
                parsers.extend(action.choices.values())
            elif action.type is not None and action.default is not None:
                assert action.type not in (int, float), f"{script}.py {action.option_strings}: a bare {action.type.__name__}"
                for value in action.default if isinstance(action.default, list) else [action.default]:
                    assert action.type(repr(value)) == value, (script, action.option_strings, value)
                    checked += 1
    assert checked > 0
