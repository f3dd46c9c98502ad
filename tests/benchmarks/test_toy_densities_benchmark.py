"""benchmarks/toy_densities.py times every registered density and prints one row each."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ctflows.data import list_densities

ROOT = Path(__file__).resolve().parents[2]


def test_every_density_gets_a_row_with_two_timings():
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "toy_densities.py"), "--n", "200", "--repeats", "1"],
        capture_output=True, text=True, timeout=120, env={"PATH": "", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line.split("|") for line in done.stdout.splitlines() if line.startswith("| ")]
    rows = {cells[1].strip(): cells[2:5] for cells in lines}
    assert set(list_densities()) <= rows.keys()
    for name in list_densities():
        dim, log_prob, sample = (cell.strip() for cell in rows[name])
        assert int(dim) >= 2 and float(log_prob) >= 0 and float(sample) >= 0, name  # ms to 0.1: 0.0 is possible
