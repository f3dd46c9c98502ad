"""benchmarks/flow_matching_variance.py runs in a tiny configuration and prints one sensible row per density."""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_variance_table_has_a_positive_finite_ratio_per_density():
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "flow_matching_variance.py"), "--densities", "two_moons", "rings",
         "--pretrain", "3", "--batch", "64", "--draws", "6"],
        capture_output=True, text=True, timeout=300, env={"PATH": "", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in done.stdout.splitlines()
            if line.startswith(("| two_moons", "| rings"))]
    assert [row[0] for row in rows] == ["two_moons", "rings"]
    for row in rows:
        uniform, stratified, norm = float(row[3]), float(row[4]), float(row[6])
        ratio, error = map(float, row[5].split("±"))
        assert uniform > 0 and stratified > 0 and norm > 0 and 0 < error < ratio
        assert math.isclose(ratio, stratified / uniform, rel_tol=2e-3, abs_tol=1e-3), row
