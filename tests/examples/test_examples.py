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
