"""`ctflows compare` end to end on a few steps: report.md/json contents, figure and CNF animation, file data."""
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from ctflows.cli.main import main
from ctflows.data import get_density

TINY = ["--steps", "3", "--eval-samples", "300", "--grid", "20", "--frames", "3", "--animation-grid", "12"]
NUMBERS = ("nll", "nll_se", "parameters", "steps", "train_seconds", "seconds_per_step", "samples_per_second")


def _finite(row, keys):
    for key in keys:
        assert isinstance(row[key], (int, float)) and math.isfinite(row[key]), (row["model"], key, row[key])


def _table_rows(markdown):
    return [line for line in markdown.splitlines() if line.startswith("| ") and not line.startswith("| model")]


@pytest.fixture(scope="module")
def density_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    status = main(["compare", "--data", "eight_gaussians", "--models", "realnvp,cnf-fm", "--out", str(out), *TINY])
    return status, out


def test_compare_reports_one_finite_row_per_model(density_run):
    status, out = density_run
    assert status == 0
    report = json.loads((out / "report.json").read_text())
    assert [r["model"] for r in report["models"]] == ["realnvp", "cnf-fm"]
    assert report["known_density"] and report["dim"] == 2 and report["seed"] == 0 and report["budget_steps"] == 3
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


def test_training_options_apply_to_every_model_of_a_comparison(tmp_path):
    argv = ["compare", "--data", "two_moons", "--models", "realnvp,nice", "--lr", "1e-3", "--batch-size", "64",
            "--out", str(tmp_path), *TINY, "--frames", "0"]
    assert main(argv) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["fit_overrides"] == {"lr": 1e-3, "batch_size": 64}
    assert [(r["lr"], r["batch_size"]) for r in report["models"]] == [(1e-3, 64), (1e-3, 64)]
    assert all("| 64 | 0.001 |" in row for row in _table_rows((tmp_path / "report.md").read_text()))


def test_compare_writes_figure_animation_checkpoints(density_run):
    _, out = density_run
    report = json.loads((out / "report.json").read_text())
    figure = Image.open(out / report["figure"])
    assert figure.size[1] > figure.size[0]  # three rows (truth + 2 models) of three panels
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
    markdown = (out / "report.md").read_text()
    assert "test NLL (nats)" in markdown and "2-D data only" in markdown and len(_table_rows(markdown)) == 2


def fail_for_nice(monkeypatch, stage: str, error: Exception) -> None:
    """Make ``compare``'s ``stage`` (a function it calls with the model's name first) raise ``error`` for nice."""
    from ctflows.cli import compare

    real = getattr(compare, stage)

    def or_fail(name, *args, **kwargs):
        if name == "nice":
            raise error
        return real(name, *args, **kwargs)

    monkeypatch.setattr(compare, stage, or_fail)


def test_a_model_that_fails_to_train_is_reported_and_the_others_kept(tmp_path, monkeypatch):
    from ctflows.errors import TrainingError

    fail_for_nice(monkeypatch, "train", TrainingError("fit: the loss is nan at step 1\n(try a lower lr)"))
    out = tmp_path / "out"
    assert main(["compare", "--data", "two_moons", "--models", "nice,realnvp", "--out", str(out), *TINY]) == 1
    report = json.loads((out / "report.json").read_text())
    failed, ok = report["models"]
    assert failed == {"model": "nice", "error": "fit: the loss is nan at step 1 (try a lower lr)"}
    _finite(ok, NUMBERS + ("kl",))
    rows = _table_rows((out / "report.md").read_text())
    assert "failed: fit: the loss is nan" in rows[0] and rows[0].count("|") == rows[1].count("|")
    assert (out / "figure.png").exists()


def test_the_headline_score_survives_a_missing_value_or_error():
    # measure() turns NaN and inf into None (JSON has neither): a missing standard error, or an infinite NLL,
    # used to stop train and compare with a traceback, before the report was written.
    from ctflows.cli.measure import quality

    assert quality({"kl": 0.1234, "kl_se": None}) == "KL 0.1234 nats"
    assert quality({"bpd": 3.5, "bpd_se": 0.01}) == "3.5000 ± 0.0100 bits/dim"
    assert quality({"nll": None, "nll_se": None, "kl": None}) == "test NLL n/a nats"


def test_a_model_whose_plot_fails_keeps_its_row_and_the_report(tmp_path, monkeypatch):
    from ctflows.errors import SolverError

    fail_for_nice(monkeypatch, "model_panels", SolverError("CNF: step size underflow on the plot grid"))
    out = tmp_path / "out"
    assert main(["compare", "--data", "two_moons", "--models", "nice,realnvp", "--out", str(out), *TINY]) == 0
    report = json.loads((out / "report.json").read_text())
    assert [row["model"] for row in report["models"]] == ["nice", "realnvp"] and "error" not in report["models"][0]
    assert "nice: no density plot: CNF: step size underflow" in (out / "report.md").read_text()
    assert (out / "figure.png").exists() and (out / "models" / "nice.pt").exists()


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
    from ctflows.errors import TrainingError

    fail_for_nice(monkeypatch, "train", TrainingError("fit: the loss is nan at step 1"))
    out = tmp_path / "out"
    assert main(["compare", "--data", "two_moons", "--models", "nice", "--out", str(out), *TINY]) == 1
    assert json.loads((out / "report.json").read_text())["figure"] is None and not (out / "figure.png").exists()
