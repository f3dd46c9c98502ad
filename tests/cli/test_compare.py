"""`ctflows compare` end to end on a few steps: report.md/json contents, figure and CNF animation, file data."""
from __future__ import annotations

import json
import math
from typing import Container

import numpy as np
import pytest
import torch
from PIL import Image

from ctflows.cli import compare
from ctflows.cli.dataset import TEST_FRACTION
from ctflows.cli.main import main
from ctflows.cli.measure import quality
from ctflows.cli.models import DEFAULT_IMAGE_MODELS, DEFAULT_MODELS
from ctflows.data import get_density
from ctflows.errors import SolverError, TrainingError
from ctflows.training import load

TRAINING = ["--steps", "3", "--eval-samples", "300", "--grid", "20"]  # what `ctflows train` takes too
TINY = [*TRAINING, "--frames", "3", "--animation-grid", "12"]
NUMBERS = ("nll", "nll_se", "parameters", "steps", "train_seconds", "seconds_per_step", "samples_per_second")


def _finite(row, keys):
    for key in keys:
        assert isinstance(row[key], (int, float)) and math.isfinite(row[key]), (row["model"], key, row[key])


def _table_rows(markdown):
    return [line for line in markdown.splitlines() if line.startswith("| ") and not line.startswith("| model")]


@pytest.fixture(scope="module")
def density_run(tmp_path_factory):
    """The run's exit status, its folder, and the curves (label -> losses) it gave the loss figure."""
    out, curves = tmp_path_factory.mktemp("compare"), {}

    def recording(series, path, **kwargs):
        curves.update(series)
        return real(series, path, **kwargs)

    real = compare.loss_curves
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(compare, "loss_curves", recording)
        status = main(["compare", "--data", "eight_gaussians", "--models", "realnvp,cnf-fm", "--out", str(out), *TINY])
    return status, out, curves


def test_compare_reports_one_finite_row_per_model(density_run):
    status, out, _ = density_run
    assert status == 0
    report = json.loads((out / "report.json").read_text())
    assert [r["model"] for r in report["models"]] == ["realnvp", "cnf-fm"]
    assert report["known_density"] and report["dim"] == 2 and report["seed"] == 0 and report["budget_steps"] == 3
    assert report["budget"] == "3 steps" and report["budget_seconds"] is None  # a budget of steps only
    for row in report["models"]:
        _finite(row, NUMBERS + ("kl", "kl_se"))
        assert row["steps"] == 3
    realnvp, cnf = report["models"]
    assert realnvp["eval_nfe"] is None and cnf["eval_nfe"] >= 2  # an adaptive solve takes several steps
    rows = _table_rows((out / "report.md").read_text())
    assert [r.split("|")[1].strip() for r in rows] == ["realnvp", "cnf-fm"]
    assert f"{realnvp['kl']:.3f} ± {realnvp['kl_se']:.3f}" in rows[0]
    # Without --lr / --batch-size each model keeps its own settings, and the table says which.
    assert (realnvp["lr"], realnvp["batch_size"], cnf["lr"], cnf["batch_size"]) == (5e-3, 512, 2e-2, 256)
    assert "| 512 | 0.005 |" in rows[0] and "| 256 | 0.02 |" in rows[1]
    assert "Trained on" not in (out / "report.md").read_text()  # fresh samples of a density: no split to state


def test_the_loss_figure_shows_each_models_step_losses_named_by_objective(density_run):
    """loss.png holds one series per model, one loss per step; a loss other than the likelihood is named."""
    _, out, curves = density_run
    assert json.loads((out / "report.json").read_text())["loss_curve"] == "loss.png"
    assert list(curves) == ["realnvp", "cnf-fm (flow matching loss)"]  # cnf-fm trains by flow matching
    assert [len(losses) for losses in curves.values()] == [3, 3]


OPTIONS = ["--data", "two_moons", "--lr", "1e-3", "--batch-size", "64", "--seed", "5"]


@pytest.fixture(scope="module")
def options_run(tmp_path_factory):
    """A comparison of realnvp then nice with training options and seed 5: its folder and report."""
    out = tmp_path_factory.mktemp("options")
    assert main(["compare", "--models", "realnvp,nice", *OPTIONS, "--out", str(out), *TINY, "--frames", "0"]) == 0
    return out, json.loads((out / "report.json").read_text())


def test_training_options_apply_to_every_model_of_a_comparison(options_run):
    out, report = options_run
    assert report["fit_overrides"] == {"lr": 1e-3, "batch_size": 64}
    assert [(r["lr"], r["batch_size"]) for r in report["models"]] == [(1e-3, 64), (1e-3, 64)]
    assert all("| 64 | 0.001 |" in row for row in _table_rows((out / "report.md").read_text()))


def test_a_compared_model_is_the_one_ctflows_train_gives_and_evaluate_reproduces_its_row(options_run, tmp_path, capsys):
    """The second model of a comparison trains and scores as `ctflows train` does with the same seed and options
    (same weights, same numbers), and `ctflows evaluate` of its saved file gives the report's KL."""
    out, report = options_run
    assert main(["train", "--model", "nice", *OPTIONS, "--out", str(tmp_path), *TRAINING]) == 0
    compared, alone = load(out / "models" / "nice.pt").state_dict(), load(tmp_path / "model.pt").state_dict()
    assert list(compared) == list(alone) and all(torch.equal(compared[k], alone[k]) for k in compared)
    row, metrics = report["models"][1], json.loads((tmp_path / "metrics.json").read_text())
    assert row["model"] == "nice"
    assert {k: row[k] for k in ("kl", "kl_se", "nll", "nll_se", "parameters", "steps")} == {
        k: metrics[k] for k in ("kl", "kl_se", "nll", "nll_se", "parameters", "steps")}
    capsys.readouterr()
    assert main(["evaluate", str(out / "models" / "nice.pt"), "--n", "300"]) == 0  # the seed comes from the file
    assert float(capsys.readouterr().out.split("KL(p || q) = ")[1].split()[0]) == pytest.approx(row["kl"], abs=1e-4)


def test_compare_writes_figure_animation_checkpoints(density_run):
    _, out, _ = density_run
    report = json.loads((out / "report.json").read_text())
    figure = Image.open(out / report["figure"])
    # three rows (truth + 2 models) of three panels each: a little taller than wide
    assert 0.8 * figure.size[1] < figure.size[0] < figure.size[1]
    gif = Image.open(out / report["animations"]["cnf-fm"])
    assert gif.n_frames >= 3  # one per time (identical held frames may be merged)
    assert "realnvp" not in report["animations"]
    for name in ("realnvp", "cnf-fm"):
        assert (out / "models" / f"{name}.pt").stat().st_size > 0
    assert (out / "loss.png").stat().st_size > 0


def test_compare_on_a_file_reports_test_nll_and_skips_plots_above_2d(tmp_path):
    data = get_density("gaussian_mixture", dim=3).sample(200, generator=torch.Generator().manual_seed(0))
    path = tmp_path / "data.csv"
    np.savetxt(path, data.numpy(), delimiter=",", header="a,b,c", comments="")
    out = tmp_path / "out"
    assert main(["compare", "--data", str(path), "--models", "nice,maf", "--out", str(out), *TINY]) == 0
    report = json.loads((out / "report.json").read_text())
    assert not report["known_density"] and report["figure"] is None
    for row in report["models"]:
        _finite(row, NUMBERS)
        assert row["kl"] is None and row["eval_points"] == 40  # 20% of 200 rows held out
        # fit's batch (nice's and maf's 512) holds at most the training rows: each step takes all 160
        assert row["batch_size"] == 200 - row["eval_points"]
    markdown = (out / "report.md").read_text()
    assert "test NLL (nats)" in markdown and "2-D data only" in markdown and len(_table_rows(markdown)) == 2
    assert f"Trained on {1 - TEST_FRACTION:.0%} of the file's rows" in markdown and f"the other {TEST_FRACTION:.0%}" in markdown


def fail_for(monkeypatch, stage: str, error: Exception, models: Container[str] | None = ("nice",)) -> None:
    """Make ``compare``'s ``stage`` (a function it calls with the model's name first) raise ``error`` for
    ``models`` (None: every model)."""
    real = getattr(compare, stage)

    def or_fail(name, *args, **kwargs):
        if models is None or name in models:
            raise error
        return real(name, *args, **kwargs)

    monkeypatch.setattr(compare, stage, or_fail)


@pytest.mark.parametrize("error", [TrainingError("fit: the loss is nan at step 1\n(try a lower lr)"),
                                   SolverError("CNF: the forward ODE solve failed\n(step size underflow)")])
def test_a_model_that_fails_to_train_is_reported_and_the_others_kept(error, tmp_path, monkeypatch):
    """A diverged fit and a failed ODE solve alike cost that model its row, in one line, and not the comparison."""
    fail_for(monkeypatch, "train", error)
    out = tmp_path / "out"
    assert main(["compare", "--data", "two_moons", "--models", "nice,realnvp", "--out", str(out), *TINY]) == 1
    report = json.loads((out / "report.json").read_text())
    failed, ok = report["models"]
    message = " ".join(str(error).split())
    assert failed == {"model": "nice", "error": message} and "\n" not in message
    _finite(ok, NUMBERS + ("kl",))
    rows = _table_rows((out / "report.md").read_text())
    assert f"failed: {message}" in rows[0] and rows[0].count("|") == rows[1].count("|")
    assert (out / "figure.png").exists()


def test_the_headline_score_survives_a_missing_value_or_error():
    # measure() turns NaN and inf into None (JSON has neither): a missing standard error, or an infinite NLL,
    # used to stop train and compare with a traceback, before the report was written.

    assert quality({"kl": 0.1234, "kl_se": None}) == "KL 0.1234 nats"
    assert quality({"bpd": 3.5, "bpd_se": 0.01}) == "3.5000 ± 0.0100 bits/dim"
    assert quality({"nll": None, "nll_se": None, "kl": None}) == "test NLL n/a nats"


def test_the_headline_score_is_bits_per_dim_else_kl_else_test_nll():
    """Rows carry an NLL beside their KL or bits/dim: the headline is the data's own quality measure."""
    nll = {"nll": 2.5, "nll_se": 0.04}
    assert quality({**nll, "kl": 0.1234, "kl_se": 0.01, "bpd": None}) == "KL 0.1234 ± 0.0100 nats"
    assert quality({**nll, "kl": None, "bpd": 3.5, "bpd_se": 0.01}) == "3.5000 ± 0.0100 bits/dim"
    assert quality({**nll, "kl": None, "bpd": None}) == "test NLL 2.5000 ± 0.0400 nats"


def test_a_model_whose_plot_fails_keeps_its_row_and_the_report(tmp_path, monkeypatch):
    fail_for(monkeypatch, "model_panels", SolverError("CNF: step size underflow on the plot grid"))
    out = tmp_path / "out"
    assert main(["compare", "--data", "two_moons", "--models", "nice,realnvp", "--out", str(out), *TINY]) == 0
    report = json.loads((out / "report.json").read_text())
    assert [row["model"] for row in report["models"]] == ["nice", "realnvp"] and "error" not in report["models"][0]
    assert "nice: no density plot: CNF: step size underflow" in (out / "report.md").read_text()
    assert (out / "figure.png").exists() and (out / "models" / "nice.pt").exists()


def test_a_cnf_whose_animation_fails_keeps_its_figure_row_and_the_note_names_the_animation(tmp_path, monkeypatch):
    """A solve failing in the animation costs the GIF only: the note says which picture is missing."""
    fail_for(monkeypatch, "animate", SolverError("CNF: step size underflow at t = 0.5"), models=("cnf-fm",))
    out = tmp_path / "out"
    assert main(["compare", "--data", "two_moons", "--models", "cnf-fm", "--out", str(out), *TINY]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["animations"] == {} and report["figure"] == "figure.png" and "error" not in report["models"][0]
    assert "cnf-fm: no density animation: CNF: step size underflow at t = 0.5" in report["notes"]


def test_a_reused_out_directory_names_what_an_earlier_run_left_in_it(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["compare", "--data", "two_moons", "--models", "nice,realnvp", "--out", str(out), *TINY]) == 0
    assert "earlier run" not in (out / "report.md").read_text()
    assert main(["compare", "--data", "two_moons", "--models", "nice", "--out", str(out), *TINY]) == 0
    markdown = (out / "report.md").read_text()
    # realnvp's model is kept (it may be the only copy) but no longer passes for part of this report
    assert (out / "models" / "realnvp.pt").exists()
    note = next(line for line in markdown.splitlines() if "earlier run" in line)
    assert "models/realnvp.pt" in note and "nice.pt" not in note and "report" not in note and "figure" not in note
    assert "models/realnvp.pt" in capsys.readouterr().out


def test_one_frame_means_no_animation(tmp_path):
    # --frames takes 0 or 1 for none: a CNF then gets no GIF (an animation needs the two ends, data and base).
    out = tmp_path / "out"
    argv = ["compare", "--data", "two_moons", "--models", "cnf-fm", "--out", str(out), *TINY, "--frames", "1"]
    assert main(argv) == 0
    assert json.loads((out / "report.json").read_text())["animations"] == {} and not list(out.glob("*.gif"))


def test_no_figure_when_every_model_failed(tmp_path, monkeypatch):
    fail_for(monkeypatch, "train", TrainingError("fit: the loss is nan at step 1"))
    out = tmp_path / "out"
    assert main(["compare", "--data", "two_moons", "--models", "nice", "--out", str(out), *TINY]) == 1
    assert json.loads((out / "report.json").read_text())["figure"] is None and not (out / "figure.png").exists()


@pytest.mark.parametrize("data, defaults", [("two_moons", DEFAULT_MODELS), ("digits", DEFAULT_IMAGE_MODELS)])
def test_without_models_the_defaults_for_the_kind_of_data_are_compared_in_order(data, defaults, tmp_path, monkeypatch):
    """No --models: vector data get DEFAULT_MODELS and images DEFAULT_IMAGE_MODELS (training is made to fail at once)."""
    if data == "digits":
        pytest.importorskip("sklearn")
    fail_for(monkeypatch, "train", TrainingError("not trained in this test"), models=None)
    assert main(["compare", "--data", data, "--out", str(tmp_path), *TINY]) == 1
    report = json.loads((tmp_path / "report.json").read_text())
    assert [row["model"] for row in report["models"]] == defaults.split(",")
