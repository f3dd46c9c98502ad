"""benchmarks/beyond_likelihood.py runs (its --quick mode) and writes curves that make sense."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_run_writes_time_to_kl_curves(tmp_path):
    out = tmp_path / "curves.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "beyond_likelihood.py"), "--quick", "--densities", "two_moons",
         "--methods", "fm_ot", "gaussianization", "--json", str(out)],
        capture_output=True, text=True, timeout=240, env={"PATH": "", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    records = json.loads(out.read_text())["two_moons"]["records"]
    assert {"ml_exact", "fm_ot", "gaussianization"} <= records.keys()  # the ML target always runs
    for name, record in records.items():
        times = [t for t, _, _ in record["curve"]]
        assert times == sorted(times) and record["steps"] > 0, name
        assert all(math.isfinite(kl) and se > 0 for _, kl, se in record["curve"]), name
    ml = records["ml_exact"]["curve"]
    assert ml[-1][1] < ml[0][1]  # maximum likelihood learned within its budget
    assert "| fm_ot |" in done.stdout
