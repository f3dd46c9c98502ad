"""Every command-line mistake ends with one line on stderr and a non-zero exit, never a traceback."""
import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import ctflows
from ctflows.cli.arguments import (
    fraction_below_one, non_negative_int, non_negative_number, open_unit_interval, positive_fraction, positive_int,
    seed_value, tutorial_parser,
)
from ctflows.cli.main import build_parser, main
from ctflows.data import get_density, list_densities
from ctflows.errors import CtflowsError


@pytest.fixture
def files(tmp_path):
    (tmp_path / "bad.csv").write_text("x,y\n1,2\n3,oops\n")
    (tmp_path / "ragged.csv").write_text("1,2\n3\n")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    (tmp_path / "one.csv").write_text("".join(f"{k * 0.37 % 1:.3f}\n" for k in range(60)))
    (tmp_path / "constant.csv").write_text("".join(f"{k * 0.37 % 1:.3f},7\n" for k in range(60)))
    (tmp_path / "dependent.csv").write_text("".join(f"{k * 0.37 % 1:.3f},{k % 5},{k * 0.37 % 1 + 2 * (k % 5):.3f}\n" for k in range(60)))
    ctflows.save(torch.nn.Linear(2, 2), tmp_path / "linear.pt", metadata={"data": "two_moons", "dim": 2})  # a module, no flow
    return tmp_path


CASES = {
    "unknown model": (["train", "--data", "two_moons", "--model", "glow9", "--steps", "1", "--out", "{out}"], "unknown model 'glow9'"),
    "unknown model in a list": (["compare", "--data", "two_moons", "--models", "realnvp,nope", "--steps", "1", "--out", "{out}"], "unknown model 'nope'"),
    "empty model list": (["compare", "--data", "two_moons", "--models", ",", "--steps", "1", "--out", "{out}"], "--models is empty"),
    "unknown data": (["train", "--data", "two_moon", "--model", "realnvp", "--steps", "1", "--out", "{out}"], "unknown density 'two_moon'"),
    "missing file": (["compare", "--data", "{dir}/nothing.csv", "--steps", "1", "--out", "{out}"], "no such file"),
    "malformed csv": (["train", "--data", "{dir}/bad.csv", "--model", "realnvp", "--steps", "1", "--out", "{out}"], "'oops' is not a number"),
    "ragged csv": (["train", "--data", "{dir}/ragged.csv", "--model", "realnvp", "--steps", "1", "--out", "{out}"], "expected 2 comma-separated values"),
    "zero minutes": (["compare", "--data", "two_moons", "--minutes", "0", "--out", "{out}"], "positive number of minutes"),
    "negative minutes": (["train", "--data", "two_moons", "--model", "nice", "--minutes", "-2", "--out", "{out}"], "positive number of minutes"),
    "nan minutes": (["train", "--data", "two_moons", "--model", "nice", "--minutes", "nan", "--out", "{out}"], "positive number of minutes"),
    "zero lr": (["train", "--data", "two_moons", "--model", "nice", "--lr", "0", "--out", "{out}"], "must be a positive number"),
    "inf lr": (["compare", "--data", "two_moons", "--lr", "inf", "--out", "{out}"], "must be a positive number"),
    "word lr": (["train", "--data", "two_moons", "--model", "nice", "--lr", "fast", "--out", "{out}"], "'fast' is not a number"),
    "ema decay of 1": (["train", "--data", "two_moons", "--model", "nice", "--ema-decay", "1", "--steps", "1", "--out", "{out}"], "strictly between 0 and 1"),
    "nan ema decay": (["train", "--data", "two_moons", "--model", "nice", "--ema-decay", "nan", "--steps", "1", "--out", "{out}"], "strictly between 0 and 1"),
    "word batch": (["train", "--data", "two_moons", "--model", "nice", "--batch-size", "many", "--out", "{out}"], "'many' is not a whole number"),
    "unknown schedule": (["train", "--data", "two_moons", "--model", "nice", "--schedule", "linear", "--out", "{out}"], "invalid choice"),
    "zero batch": (["train", "--data", "two_moons", "--model", "nice", "--batch-size", "0", "--out", "{out}"], "must be at least 1"),
    "zero steps": (["train", "--data", "two_moons", "--model", "nice", "--steps", "0", "--out", "{out}"], "must be at least 1"),
    "two budgets": (["train", "--data", "two_moons", "--model", "nice", "--steps", "5", "--minutes", "1", "--out", "{out}"], "not allowed with"),
    "missing --out": (["train", "--data", "two_moons", "--model", "nice"], "--out"),
    "out is a file": (["train", "--data", "two_moons", "--model", "nice", "--steps", "1", "--out", "{dir}/bad.csv"], "bad.csv"),
    "not a checkpoint": (["sample", "{dir}/junk.pt", "--out", "{dir}/s.csv"], "not a torch file"),
    "missing checkpoint": (["evaluate", "{dir}/none.pt"], "no such file"),
    "samples to .txt": (["sample", "{dir}/junk.pt", "--out", "{dir}/s.txt"], ".csv or .npy"),
    "one evaluation point": (["train", "--data", "two_moons", "--model", "nice", "--eval-samples", "1", "--out", "{out}"], "must be at least 2"),
    "negative frames": (["compare", "--data", "two_moons", "--frames", "-1", "--out", "{out}"], "must be at least 0"),
    "no command": ([], "required"),
    "a model listed twice": (["compare", "--data", "two_moons", "--models", "realnvp,cnf,realnvp", "--steps", "1", "--out", "{out}"],
                             "--models lists realnvp more than once"),
    "a plot that is no .png": (["sample", "{dir}/junk.pt", "--out", "{dir}/s.csv", "--plot", "{dir}/s.jpg"], "give a file name ending in .png"),
    "evaluate a module with no log_prob": (["evaluate", "{dir}/linear.pt"], "holds a Linear, which has no log_prob"),
    "sample a module that cannot sample": (["sample", "{dir}/linear.pt", "--out", "{dir}/s.csv"], "holds a Linear, which cannot sample"),
    # torch refuses seeds from 2^64, and the run derives seed + 2 from it: refused before training, not after.
    "seed too large": (["train", "--data", "two_moons", "--model", "nice", "--seed", str(2**64 - 1), "--steps", "1", "--out", "{out}"],
                       "from 0 to 2^63 - 1"),
    "negative seed": (["sample", "{dir}/junk.pt", "--seed", "-1", "--out", "{dir}/s.csv"], "from 0 to 2^63 - 1"),
    # Checked for every model before the first trains: cnf would otherwise train first, then realnvp fail.
    # Points on a hyperplane would train a spike whose likelihood grows without bound: refused before training.
    "a constant column": (["train", "--data", "{dir}/constant.csv", "--model", "cnf", "--steps", "1", "--out", "{out}"],
                          "column 1 of the data is constant"),
    "dependent columns": (["compare", "--data", "{dir}/dependent.csv", "--models", "realnvp", "--steps", "1", "--out", "{out}"],
                          "the data lie on a hyperplane"),
    "a model too narrow for the data": (["compare", "--data", "{dir}/one.csv", "--models", "cnf,realnvp", "--steps", "1", "--out", "{out}"],
                                        "realnvp split the features in two and need at least 2"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_mistake_gives_one_line_and_nonzero_exit(case, files, capsys):
    argv, expected = CASES[case]
    argv = [a.format(dir=files, out=files / "out") for a in argv]
    status = main(argv)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert status != 0
    assert len(lines) == 1 and "error" in lines[0], captured.err
    assert expected in lines[0] and "Traceback" not in captured.err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message for a machine without CUDA")
def test_cuda_without_a_gpu_is_a_one_line_error(tmp_path, capsys):
    assert main(["train", "--data", "two_moons", "--model", "nice", "--steps", "1", "--device", "cuda", "--out", str(tmp_path)]) == 1
    assert "no CUDA device" in capsys.readouterr().err


def test_installed_command_exits_nonzero_without_traceback(tmp_path):
    # One subprocess (importing torch costs seconds): the real exit status and stderr of the console script.
    script = shutil.which("ctflows", path=str(Path(sys.executable).parent))
    command = [script] if script else [sys.executable, "-m", "ctflows.cli"]
    bad = subprocess.run([*command, "train", "--data", "two_moons", "--model", "glow9", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines() == [bad.stderr.strip()] and "unknown model 'glow9'" in bad.stderr


# Out-of-range values are usage errors: argparse's exit status 2, refused before anything is loaded or written.
RANGE_CASES = {
    "ema decay of 0": (["train", "--data", "two_moons", "--model", "nice", "--ema-decay", "0"], "strictly between 0 and 1"),
    "seed of 2^63": (["train", "--data", "two_moons", "--model", "nice", "--seed", str(2**63)], "from 0 to 2^63 - 1"),
    "infinite minutes": (["compare", "--data", "two_moons", "--minutes", "inf"], "positive number of minutes"),
    "zero grid": (["train", "--data", "two_moons", "--model", "nice", "--grid", "0"], "must be at least 1"),
    "zero samples": (["sample", "{dir}/model.pt", "--n", "0"], "must be at least 1"),
    "fractional steps": (["train", "--data", "two_moons", "--model", "nice", "--steps", "2.5"], "'2.5' is not a whole number"),
}


@pytest.mark.parametrize("case", list(RANGE_CASES))
def test_a_value_out_of_range_exits_with_status_2_before_any_work(case, tmp_path, capsys):
    argv, expected = RANGE_CASES[case]
    out = tmp_path / "out"
    status = main([a.format(dir=tmp_path) for a in argv] + ["--out", str(out)])
    err = capsys.readouterr().err
    assert status == 2, err
    assert err.count("\n") == 1 and expected in err and "--help" in err
    assert not out.exists()


def test_the_argument_types_accept_the_ends_of_their_ranges():
    assert (non_negative_int("0"), positive_int("1"), seed_value("0"), seed_value(str(2**63 - 1))) == (0, 1, 0, 2**63 - 1)
    assert (non_negative_number("0"), open_unit_interval("0.999")) == (0.0, 0.999)
    for parse, text in ((non_negative_int, "-1"), (non_negative_number, "inf"), (non_negative_number, "nan"),
                        (non_negative_number, "-1e-9"), (open_unit_interval, "0"), (positive_int, "0")):
        with pytest.raises(argparse.ArgumentTypeError):
            parse(text)


def test_the_fraction_types_keep_their_ends_apart():
    assert (fraction_below_one("0"), fraction_below_one("0.999"), positive_fraction("1"), positive_fraction("1e-9")) == (
        0.0, 0.999, 1.0, 1e-9)
    for parse, text, message in ((fraction_below_one, "1", "must be at least 0 and below 1, got 1"),
                                 (fraction_below_one, "-0.1", "below 1"), (fraction_below_one, "nan", "below 1"),
                                 (positive_fraction, "0", "must be above 0 and at most 1, got 0"),
                                 (positive_fraction, "2", "at most 1"), (positive_fraction, "inf", "at most 1"),
                                 (positive_fraction, "nan", "at most 1"), (positive_fraction, "half", "'half' is not a number")):
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            parse(text)


def test_every_default_the_help_states_is_the_one_used() -> None:
    """Each "(default N)" in a command's --help is the value the option takes when it is left out (for --minutes
    of compare, the command's default budget)."""
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    stated = 0
    for command, parser in commands.items():
        for action in parser._actions:
            match = re.search(r"\(default (-?[\d.]+)\)", action.help or "")
            if match is None:
                continue
            default = action.default if action.default is not None else parser.get_default(f"default_{action.dest}")
            assert default == float(match.group(1)), (command, action.option_strings, default)
            stated += 1
    assert stated >= 13  # train 4, compare 6, sample 2, evaluate 1


def test_help_prints_the_usage_and_exits_with_status_0(capsys: pytest.CaptureFixture[str]) -> None:
    """--help is not a mistake: the usage goes to stdout and the status is 0."""
    assert main(["sample", "--help"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("usage: ctflows sample") and captured.err == ""


@pytest.mark.parametrize("error, status, line", [
    (KeyboardInterrupt(), 130, "ctflows data: interrupted"),
    (CtflowsError("a message\n    that wraps"), 1, "ctflows data: error: a message that wraps"),
    (OSError("No space left on device"), 1, "ctflows data: error: No space left on device"),
])
def test_an_error_while_running_is_one_line_naming_the_command_and_its_status(
    error: BaseException, status: int, line: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ctrl-C exits 130 (the shell's convention) and says so; an error, even one whose message wraps, is one line."""

    def fail(args: object) -> int:
        raise error

    monkeypatch.setattr("ctflows.cli.data.run", fail)
    assert main(["data", "list"]) == status
    assert capsys.readouterr().err == line + "\n"


def test_a_reader_that_went_away_ends_the_command_quietly_with_status_141(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ctflows data list | head`: a BrokenPipeError exits 141 with nothing on stderr, and stdout then goes to
    /dev/null, so that Python's flush at exit cannot fail on the closed pipe again."""

    def fail(args: object) -> int:
        raise BrokenPipeError

    monkeypatch.setattr("ctflows.cli.data.run", fail)
    with open(tmp_path / "stdout.txt", "w") as stdout:
        monkeypatch.setattr(sys, "stdout", stdout)
        assert main(["data", "list"]) == 141
        print("written after the pipe closed", file=stdout, flush=True)
    assert (tmp_path / "stdout.txt").read_text() == "" and capsys.readouterr().err == ""


def test_a_tutorial_takes_only_the_two_dimensional_densities(capsys: pytest.CaptureFixture[str]) -> None:
    """The tutorials' models are 2-D: --data lists only 2-D densities, and refuses another as a usage error."""
    parser = tutorial_parser("demo", data="two_moons")
    choices = next(action.choices for action in parser._actions if action.dest == "data")
    assert parser.parse_args([]).data == "two_moons" and "two_moons" in choices
    assert all(get_density(name).dim == 2 for name in choices)
    wider = next(name for name in list_densities() if get_density(name).dim != 2)
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args(["--data", wider])
    assert exit_.value.code == 2 and "invalid choice" in capsys.readouterr().err
