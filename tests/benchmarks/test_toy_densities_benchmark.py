"""benchmarks/toy_densities.py times every registered density and prints one row each."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ctflows.data import list_densities

ROOT = Path(__file__).resolve().parents[2]


def test_every_density_gets_a_row_with_two_positive_timings():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "toy_densities.py"), "--n", "200", "--repeats", "1"],
                          capture_output=True, text=True, timeout=120, env={"PATH": "", "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {line.split("|")[1].strip(): line.split("|")[2:5] for line in done.stdout.splitlines() if line.startswith("| ")}
    assert set(list_densities()) <= rows.keys()
    for name in list_densities():
        dim, log_prob, sample = (cell.strip() for cell in rows[name])
        assert int(dim) >= 2 and float(log_prob) > 0 and float(sample) > 0, name
