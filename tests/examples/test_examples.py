"""Every tutorial runs with --quick, so the examples never rot."""
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("[0-9][0-9]_*.py"))


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs_quick(script, tmp_path):
    done = subprocess.run(
        [sys.executable, str(script), "--quick", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300, env={"MPLBACKEND": "Agg", "PATH": ""},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert list(tmp_path.glob("*.png")), "the example saved no figure"


# A flag of each kind per tutorial that has one: before, --steps 0 and --seconds 0 ended in a traceback from fit
# after the data were loaded, and --weight nan trained the "regularized" model without its penalty.
BAD_FLAGS = {
    "02_discrete_flows": ["--steps", "0"],
    "03_continuous_flow_ffjord_way": ["--steps", "-1"],
    "06_flow_matching_vs_likelihood": ["--seconds", "0"],
    "07_conditional_density": ["--steps", "2.5"],
    "10_regularized_cnf": ["--weight", "nan"],
}


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_a_bad_flag_is_refused_in_one_line_before_any_work(script, tmp_path):
    flags = BAD_FLAGS.get(script.stem, ["--out"])  # --out without its folder: a usage error in every tutorial
    done = subprocess.run(
        [sys.executable, str(script), "--quick", *flags], cwd=tmp_path,
        capture_output=True, text=True, timeout=120, env={"MPLBACKEND": "Agg", "PATH": ""},
    )
    assert done.returncode == 2, done.stderr[-3000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "error: argument" in lines[0] and "--help" in lines[0], done.stderr
    assert not list(tmp_path.iterdir()), "the tutorial wrote something before refusing its arguments"
