"""benchmarks/cnf.py and cnf_profile.py run in tiny configurations and print tables whose numbers make sense."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args], capture_output=True, text=True, timeout=300,
        env={"PATH": "", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _rows(table: str, first: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines() if line.startswith(f"| {first}")]


def test_flow_matching_quality_run_reports_a_finite_kl():
    out = _run("cnf.py", "quality", "--density", "eight_gaussians", "--seconds", "2", "--adjoint", "False",
               "--batch", "256", "--objective", "flow_matching", "--eval-n", "300", "--hidden", "16", "16")
    (row,) = _rows(out, "flow matching")
    kl = float(row[4].split("±")[0])
    assert int(row[1]) > 10 and row[3] == "0" and 0 < kl < 5  # steps taken, no ODE solve in training


def test_memory_on_a_trained_model_reports_nfe_growing_with_tolerance(tmp_path):
    out = _run("cnf.py", "memory", "--trained-seconds", "3", "--tols", "1e-2", "1e-6", "--iters", "1", "--warmup", "0",
               "--batch", "64", "--hidden", "16", "16", "--jobs", "1", "--save-dir", str(tmp_path))
    assert "model trained first for 3 s" in out
    adjoint = _rows(out, "adjoint")
    assert len(adjoint) == 2 and int(adjoint[1][2]) >= int(adjoint[0][2])  # tighter tolerance: no fewer evaluations


def test_profile_splits_an_iteration_into_forward_and_backward():
    out = _run("cnf_profile.py", "--warm-iters", "1", "--iters", "2", "--batch", "64", "--top", "3")
    forward, backward = (float(_rows(out, part)[0][1]) for part in ("forward solve", "backward"))
    total = float(_rows(out, "total")[0][1])
    assert forward > 0 and backward > 0 and abs(total - forward - backward) < 2e-4
    assert len(re.findall(r"^\| `", out, flags=re.M)) == 3
    plain, with_vjp, share = re.search(r"([\d.]+) ms per evaluation, ([\d.]+) ms with its vector-Jacobian product.*?(\d+)% of the", out).groups()
    assert 0 < float(plain) < float(with_vjp) and 0 < int(share)  # a VJP costs more than the evaluation it differentiates


def test_rnode_run_reports_both_models_with_their_end_times():
    out = _run("cnf.py", "rnode", "--density", "eight_gaussians", "--seconds", "2", "--adjoint", "False", "--batch", "64",
               "--kinetic", "0.5", "--frobenius", "0.5", "--weight-schedule", "decay", "--eval-n", "300", "--hidden", "16", "16")
    (plain,) = _rows(out, "plain")
    (regularized,) = _rows(out, "RNODE (K 0.5, B 0.5, decaying)")
    for row in (plain, regularized):
        assert int(row[1]) > 5 and float(row[4].split("±")[0]) < 10 and int(row[5]) > 0
        assert 0 < float(row[6]) < 5  # T after training, learned from 0.5


def test_decaying_rnode_weights_fall_linearly_to_zero_over_the_budget(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import cnf

    weights = {"kinetic_energy": 0.5, "jacobian_frobenius": 0.2}
    assert cnf.rnode_weights(weights, 30.0, 60.0, "constant") == weights
    assert cnf.rnode_weights(weights, 0.0, 60.0, "decay") == weights
    assert cnf.rnode_weights(weights, 45.0, 60.0, "decay") == {"kinetic_energy": 0.125, "jacobian_frobenius": 0.05}
    assert cnf.rnode_weights(weights, 61.0, 60.0, "decay") == {"kinetic_energy": 0.0, "jacobian_frobenius": 0.0}
