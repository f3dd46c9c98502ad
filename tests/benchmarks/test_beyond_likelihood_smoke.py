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


def test_kl_evaluations_stay_off_the_training_clock(monkeypatch):
    # Each point's time is the training time before its evaluation; the evaluation itself is not counted.
    import time

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import beyond_likelihood

    def slow_evaluate(*args, **kwargs):
        time.sleep(0.3)
        return {"kl": 0.5, "kl_se": 0.01}

    monkeypatch.setattr(beyond_likelihood.ctflows, "evaluate", slow_evaluate)
    curve = beyond_likelihood.KLCurve(density=None, every=1.0, eval_n=10, stop_below=None)
    curve.start()
    for _ in range(3):
        time.sleep(0.1)  # "training"
        curve.measure(flow=None)
    times = [t for t, _, _ in curve.points]
    assert [round(t, 1) for t in times] == [0.1, 0.2, 0.3], times
