"""benchmarks/beyond_likelihood.py runs (its --quick mode) and writes curves that make sense."""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_quick(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "beyond_likelihood.py"), "--quick", "--densities", "two_moons", *args],
        capture_output=True, text=True, timeout=240, env={"PATH": "", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)},
    )


def test_quick_run_writes_time_to_kl_curves(tmp_path):
    out = tmp_path / "curves.json"
    done = run_quick("--methods", "fm_ot", "gaussianization", "--json", str(out))
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

    # Another method against the same target, without training maximum likelihood again.
    again = tmp_path / "again.json"
    done = run_quick("--methods", "fm_ema", "--seed", "1", "--target-from", str(out), "--json", str(again))
    assert done.returncode == 0, done.stderr[-3000:]
    second = json.loads(again.read_text())["two_moons"]["records"]
    assert second["ml_exact"] == {**records["ml_exact"], "target_from": str(out)} and set(second) == {"ml_exact", "fm_ema"}
    assert all(math.isfinite(kl) for _, kl, _ in second["fm_ema"]["curve"])


def test_kl_evaluations_stay_off_the_training_clock(monkeypatch):
    # Each point's time is fit's training time at its step; the evaluations themselves are not counted.
    import time

    import ctflows

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import beyond_likelihood

    def slow_evaluate(*args, **kwargs):
        time.sleep(0.2)
        return {"kl": 0.5, "kl_se": 0.01}

    monkeypatch.setattr(beyond_likelihood.ctflows, "evaluate", slow_evaluate)
    curve = beyond_likelihood.KLCurve(density=None, every=1e-9, eval_n=10, stop_below=None)  # a mark every step
    flow = ctflows.realnvp(features=2, blocks=1)
    history = ctflows.fit(flow, ctflows.get_density("two_moons"), steps=3, batch_size=16, progress=False,
                          callback=curve.callback(flow))
    times = [t for t, _, _ in curve.points]
    assert len(times) == 3 and 0 < times[0] < times[1] < times[2] == history.trained_seconds, times
    assert times[2] + 3 * 0.2 <= history.wall_time  # the three evaluations' sleeps are not in it


def test_the_averaged_method_is_measured_on_its_average(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import torch

    import beyond_likelihood

    param = torch.nn.Parameter(torch.zeros(1))
    monkeypatch.setattr(beyond_likelihood.ctflows, "evaluate", lambda *a, **k: {"kl": float(param.detach()), "kl_se": 0.1})
    average = beyond_likelihood.ParameterAverage([param], decay=0.5)
    curve = beyond_likelihood.KLCurve(density=None, every=1e-9, eval_n=10, stop_below=None)
    on_step = curve.callback(param, average)
    history = types.SimpleNamespace(skipped=[], trained_seconds=1.0)
    for step, value in ((1, 4.0), (2, 0.0)):
        with torch.no_grad():
            param.fill_(value)
        on_step(step, history)
    # (0.5 · 4 + 1 · 0) / 1.5 = 4/3 (bias-corrected), read with the average in place; the parameter keeps its value
    assert curve.points[-1][1] == pytest.approx(4 / 3) and float(param.detach()) == 0.0
    # the callback's averaging is training work done outside fit's steps: it is on the curve's clock
    assert curve.averaging_seconds > 0 and curve.points[-1][0] == 1.0 + curve.averaging_seconds
    history.skipped.append(3)
    with torch.no_grad():
        param.fill_(100.0)
    on_step(3, history)  # a skipped step is not averaged
    assert curve.points[-1][1] == pytest.approx(4 / 3)


@pytest.mark.parametrize("method", ["ml_deep", "fm_deep"])
def test_the_deep_methods_train_the_deeper_field_with_their_twins_settings(monkeypatch, method):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import beyond_likelihood
    from cnf_common import FFJORD_TOY_MODEL, build_flow

    seen = {}

    def record_fit(flow, density, **options):
        seen.update(options, flow=flow)
        return types.SimpleNamespace(trained_seconds=1.0)

    monkeypatch.setattr(beyond_likelihood.ctflows, "fit", record_fit)
    monkeypatch.setattr(beyond_likelihood.KLCurve, "measure", lambda self, flow, trained, average=None: self.points.append((trained, 1.0, 0.1)))
    curve = beyond_likelihood.KLCurve(density=None, every=1.0, eval_n=10, stop_below=None)
    settings = beyond_likelihood.Settings(deep_hidden=(8, 8, 8, 8))
    record = beyond_likelihood.train_gradient(method, None, 2, 1.0, curve, settings)
    count = lambda flow: sum(p.numel() for p in flow.parameters())  # noqa: E731
    deep = build_flow(2, argparse.Namespace(**{**vars(FFJORD_TOY_MODEL), "hidden": [8, 8, 8, 8]}), adjoint=False, divergence="exact")
    assert count(seen["flow"]) == count(deep) != count(build_flow(2, FFJORD_TOY_MODEL, adjoint=False, divergence="exact"))
    if method == "fm_deep":  # fm_ema's settings: flow matching, the large batch, a constant rate
        assert seen["objective"].name == "flow_matching" and seen["batch_size"] == 4096 and seen["schedule"] == "constant"
        assert record["times"] == "uniform" and record["lr"] == seen["lr"]  # the recipe --summary tells runs apart by
    else:  # ml_exact's
        assert "objective" not in seen and seen["batch_size"] == 256 and seen["schedule"] == "cosine"
        assert "times" not in record and record["lr"] == seen["lr"]


def test_fm_fast_is_fm_ema_with_its_own_rate_schedule_and_path_times(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import beyond_likelihood

    settings = beyond_likelihood.Settings(fast_lr=3e-2, fast_schedule="cosine", fast_times="stratified", ml_lr=1e-2)
    fast = beyond_likelihood.training_options("fm_fast", settings)
    ema = beyond_likelihood.training_options("fm_ema", settings)
    assert fast["objective"].times == "stratified" and ema["objective"].times == "uniform"
    default = beyond_likelihood.training_options("fm_fast", beyond_likelihood.Settings())
    assert (default["lr"], default["schedule"], default["objective"].times) == (5e-2, "cosine", "uniform")
    assert (fast["lr"], fast["schedule"], fast["batch_size"]) == (3e-2, "cosine", 4096)
    assert (ema["lr"], ema["schedule"], ema["batch_size"]) == (5e-3, "constant", 4096)
    assert beyond_likelihood.training_options("ml_exact", settings)["lr"] == 1e-2
    assert "fm_fast" in beyond_likelihood.AVERAGED_METHODS


def test_of_several_earlier_targets_the_lowest_final_kl_is_taken(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import beyond_likelihood

    def saved(final_kl, seconds=300.0, **extra):
        record = {"steps": 1, "curve": [[10.0, 1.0, 0.1], [300.0, final_kl, 0.1]]}
        return {"rings": {"seconds": seconds, "records": {"ml_exact": record}, **extra}}

    earlier = [("a.json", saved(0.40)), ("b.json", saved(0.35, ml_lr=1e-2)), ("c.json", saved(0.38))]
    target = beyond_likelihood.hardest_target(earlier, "rings", 300.0, 4000)
    assert target["curve"][-1][1] == 0.35 and target["target_from"] == "b.json" and target["lr"] == 1e-2
    assert beyond_likelihood.hardest_target(earlier[:1], "rings", 300.0, 4000)["lr"] == 5e-3  # files before --ml-lr
    with pytest.raises(SystemExit, match="b.json: 'rings' had budget 120.0 s there, 300.0 s here"):
        beyond_likelihood.hardest_target([("a.json", saved(0.4)), ("b.json", saved(0.3, seconds=120.0))], "rings", 300.0, 4000)
    with pytest.raises(SystemExit, match="evaluated on 2000 samples there, 4000 here"):
        beyond_likelihood.hardest_target([("a.json", saved(0.4, eval_n=2000))], "rings", 300.0, 4000)


def test_speed_up_compares_times_to_the_same_kl(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import beyond_likelihood

    ml = {"curve": [(100.0, 0.5, 0.01), (200.0, 0.2, 0.01), (250.0, 0.3, 0.01), (300.0, 0.1, 0.01)], "steps": 9}
    # (real runs stop at the target; this one goes on, so that its later rise shows it is not counted)
    reached = {"curve": [(20.0, 0.4, 0.01), (40.0, 0.09, 0.01), (60.0, 0.12, 0.01)], "steps": 9, "lr": 0.05}
    missed = {"curve": [(30.0, 0.25, 0.01), (45.0, 0.6, 0.01), (60.0, 0.25, 0.01)], "steps": 9, "lr": 0.05}
    records = {"ml_exact": ml, "fm_fast": reached, "fm_ema": missed}
    # reached the target 0.1 at 40 s, where ML first got there at 300 s
    assert beyond_likelihood.speed_up(records, "fm_fast") == {"kl": 0.12, "reached": 40.0, "ratio": 300 / 40}
    # missed: ML first got to its last KL, 0.25, at 200 s (not the later 0.3); the run's time is its last mark's
    assert beyond_likelihood.speed_up(records, "fm_ema") == {"kl": 0.25, "reached": None, "ratio": 200 / 60}
    nan = {**records, "fm_ema": {"curve": [(60.0, float("nan"), 0.01)], "steps": 9}}
    assert beyond_likelihood.speed_up(nan, "fm_ema")["ratio"] is None

    def run(fm_fast: dict, ml_curve: list = ml["curve"]) -> dict:
        return {"two_moons": {"seconds": 300.0, "fm_fraction": 0.2,
                              "records": {"ml_exact": {"curve": ml_curve}, "fm_fast": fm_fast}}}

    easier = [*ml["curve"][:-1], (300.0, 0.25, 0.01)]  # another ML run, with another target
    rows = beyond_likelihood.summary([run(reached), run({**missed, "times": "uniform"}), run({**missed, "lr": 0.02}),
                                      run(missed, easier), run({**missed, "times": "stratified"})]).splitlines()
    assert rows[2:] == [
        "| two_moons (0.1000) | fm_fast (lr 0.05), 60 s | 0.1200; 0.2500 | 40; — | 7.5x; 3.3x | 1 of 2 |",
        "| two_moons (0.1000) | fm_fast (lr 0.02), 60 s | 0.2500 | — | 3.3x | 0 of 1 |",
        "| two_moons (0.2500) | fm_fast (lr 0.05), 60 s | 0.2500 | 30 | 6.7x | 1 of 1 |",
        "| two_moons (0.1000) | fm_fast (lr 0.05, stratified times), 60 s | 0.2500 | — | 3.3x | 0 of 1 |",
    ]


def test_runs_with_other_schedules_batches_or_fields_get_rows_of_their_own(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import beyond_likelihood

    ml = {"curve": [(100.0, 0.5, 0.01), (300.0, 0.1, 0.01)]}

    def run(**settings) -> dict:
        record = {"curve": [(60.0, 0.3, 0.01)], "steps": 9, "lr": 0.05, "times": "uniform", **settings}
        return json.loads(json.dumps({"two_moons": {"seconds": 300.0, "fm_fraction": 0.2,
                                                    "records": {"ml_exact": ml, "fm_fast": record}}}))

    cosine = dict(schedule="cosine", batch_size=4096, seed=0)
    rows = beyond_likelihood.summary([run(**cosine), run(**{**cosine, "seed": 1}), run(**{**cosine, "schedule": "constant"}),
                                      run(**{**cosine, "batch_size": 256}), run(**cosine, hidden=[64] * 6), run()]).splitlines()
    labels = [row.split(" | ")[1] for row in rows[2:]]
    assert labels == ["fm_fast (lr 0.05, cosine, batch 4096), 60 s", "fm_fast (lr 0.05, constant, batch 4096), 60 s",
                      "fm_fast (lr 0.05, cosine, batch 256), 60 s",
                      "fm_fast (lr 0.05, cosine, batch 4096, hidden 64-64-64-64-64-64), 60 s",
                      "fm_fast (lr 0.05), 60 s"]  # the last: a record from before they kept these settings
    assert rows[2].endswith("| 0 of 2 |")  # two seeds of one recipe share a row


def test_the_curve_stops_training_when_its_clock_has_spent_the_budget(monkeypatch):
    # fit's budget counts its steps; the curve's clock also counts the parameter average's updates, and the
    # run must end by that clock, or an averaged method trains past its budget.
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import beyond_likelihood

    monkeypatch.setattr(beyond_likelihood.KLCurve, "measure", lambda self, flow, trained, average=None: 1.0)
    curve = beyond_likelihood.KLCurve(density=None, every=100.0, eval_n=10, stop_below=None, budget=10.0)
    on_step = curve.callback(None)
    curve.averaging_seconds = 0.5
    assert on_step(1, types.SimpleNamespace(skipped=[], trained_seconds=9.4)) is False
    assert on_step(2, types.SimpleNamespace(skipped=[], trained_seconds=9.6)) is True  # 9.6 + 0.5 ≥ 10


def test_an_unknown_method_name_is_refused():
    done = run_quick("--methods", "fm-ema")
    assert done.returncode == 2 and "invalid choice: 'fm-ema'" in done.stderr
