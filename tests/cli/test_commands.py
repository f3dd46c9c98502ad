"""`ctflows train`, `sample`, `evaluate` and `data list` end to end, in-process, on budgets of a few steps."""
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import ctflows
import ctflows.cli.figures as figures
from ctflows.cli.main import main
from ctflows.data import get_density, list_densities
from ctflows.training import load

TINY = ["--steps", "5", "--eval-samples", "500", "--grid", "24"]


def _printed_kl(capsys: pytest.CaptureFixture[str]) -> float:
    """The KL that `ctflows evaluate` printed since the last read of the captured output."""
    return float(capsys.readouterr().out.split("KL(p || q) = ")[1].split()[0])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("train")
    assert main(["train", "--data", "two_moons", "--model", "realnvp", "--out", str(out), *TINY]) == 0
    return out


def test_train_writes_model_checkpoint_metrics_and_plots(trained):
    for name in ("model.pt", "checkpoint/model.pt", "checkpoint/training_state.pt", "loss.png", "density.png"):
        assert (trained / name).stat().st_size > 0, name
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["model"] == "realnvp" and metrics["steps"] == 5 and metrics["dim"] == 2
    for key in ("kl", "kl_se", "nll", "parameters", "seconds_per_step", "samples_per_second"):
        assert math.isfinite(metrics[key]), key
    # KL(p‖q) >= 0; its Monte Carlo estimate may dip below only by sampling error.
    assert metrics["kl"] >= -3 * metrics["kl_se"]


def test_training_options_reach_fit_and_the_metrics(tmp_path):
    argv = ["train", "--data", "two_moons", "--model", "cnf", "--lr", "3e-3", "--batch-size", "64", "--schedule", "constant",
            "--ema-decay", "0.9", "--out", str(tmp_path)]
    assert main([*argv, *TINY]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    given = {"lr": 3e-3, "batch_size": 64, "schedule": "constant", "ema_decay": 0.9}  # cnf's own: 1e-2, 256, cosine, none
    assert {key: metrics[key] for key in given} == given
    # fit records what it was given in its resumable state, so the values reached the training loop itself.
    state = torch.load(tmp_path / "checkpoint" / "training_state.pt", weights_only=False)
    assert {key: state["config"][key] for key in given} == given


def test_saved_model_reproduces_the_reported_kl(trained, capsys):
    flow = load(trained / "model.pt")
    x = get_density("two_moons").sample(500, generator=torch.Generator().manual_seed(1))
    assert torch.isfinite(flow.log_prob(x)).all()
    capsys.readouterr()
    reported = json.loads((trained / "metrics.json").read_text())["kl"]
    # Without --seed, evaluate draws the points measure() drew (the model's seed + 1); --seed 1 says so explicitly.
    for seed in ([], ["--seed", "1"]):
        assert main(["evaluate", str(trained / "model.pt"), "--n", "500", *seed]) == 0
        assert _printed_kl(capsys) == pytest.approx(reported, abs=1e-4)


@pytest.mark.parametrize("suffix", [".csv", ".npy", ".NPY"])
def test_sample_writes_a_table_the_model_finds_likely(trained, tmp_path, suffix):
    out = tmp_path / f"samples{suffix}"
    assert main(["sample", str(trained / "model.pt"), "--n", "200", "--out", str(out), "--plot", str(tmp_path / "s.png")]) == 0
    x = np.loadtxt(out, delimiter=",") if suffix == ".csv" else np.load(out)
    assert x.shape == (200, 2) and sorted(p.name for p in tmp_path.iterdir()) == sorted([out.name, "s.png"])
    flow = load(trained / "model.pt")
    flow.eval()
    with torch.no_grad():
        own = flow.log_prob(torch.as_tensor(x, dtype=torch.float32)).mean()
        far = flow.log_prob(torch.as_tensor(x, dtype=torch.float32) + 20).mean()
    assert own > far  # samples sit where the model puts its mass
    assert (tmp_path / "s.png").stat().st_size > 1000


def test_evaluate_on_a_test_file_reports_nll_only(trained, tmp_path, capsys):
    path = tmp_path / "test.csv"
    np.savetxt(path, get_density("two_moons").sample(100, generator=torch.Generator().manual_seed(3)).numpy(), delimiter=",")
    capsys.readouterr()
    assert main(["evaluate", str(trained / "model.pt"), "--data", str(path)]) == 0
    printed = capsys.readouterr().out
    assert "100 rows of" in printed and "KL" not in printed


def test_data_list_names_and_describes_every_density(capsys):
    assert main(["data", "list"]) == 0
    densities, images = capsys.readouterr().out.split("\n\n")
    lines = densities.splitlines()
    assert len(lines) == len(list_densities())
    for line, (name, description) in zip(lines, list_densities().items()):
        assert line.split()[0] == name and line.endswith(description) and description
    assert len({len(line) - len(description) for line, description in zip(lines, list_densities().values())}) == 1  # one column
    assert images.startswith("image data: digits")


@pytest.mark.parametrize("model", ["realnvp", "cnf-fm"])
def test_file_data_in_any_units_give_the_same_model_up_to_the_change_of_units(model, tmp_path):
    # File data are standardised by a fixed first layer, so data in other units (y = 50 x + c) train the
    # same model; its test NLL differs by exactly log|det| = 2 log 50.
    x = get_density("two_moons").sample(1000, generator=torch.Generator().manual_seed(0)).double()
    nll = {}
    for name, data in (("x", x), ("y", 50 * x + torch.tensor([300.0, -1000.0], dtype=torch.float64))):
        np.savetxt(tmp_path / f"{name}.csv", data.numpy(), delimiter=",")
        out = tmp_path / name
        assert main(["train", "--data", str(tmp_path / f"{name}.csv"), "--model", model, "--out", str(out), "--steps", "20"]) == 0
        nll[name] = json.loads((out / "metrics.json").read_text())["nll"]
        first = load(out / "model.pt").transform.layers[0]
        train_rows = data[torch.randperm(1000, generator=torch.Generator().manual_seed(0))[200:]]  # load_dataset's split
        torch.testing.assert_close(first.loc.double(), train_rows.mean(dim=0), rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(first.scale.double(), train_rows.std(dim=0), rtol=1e-5, atol=0)
    assert nll["y"] - nll["x"] == pytest.approx(2 * math.log(50.0), abs=1e-3)


def test_a_built_in_name_wins_over_a_folder_of_that_name(tmp_path, monkeypatch, capsys):
    # `--out two_moons` makes a folder named like the density; evaluating and training again must still work.
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--data", "two_moons", "--model", "nice", "--out", "two_moons", *TINY]) == 0
    capsys.readouterr()
    assert main(["evaluate", "two_moons/model.pt", "--n", "300"]) == 0
    assert "KL(p || q)" in capsys.readouterr().out
    assert main(["train", "--data", "two_moons", "--model", "nice", "--out", "two_moons", *TINY]) == 0


def test_evaluate_elsewhere_says_where_the_training_file_was_expected(tmp_path, monkeypatch, capsys):
    (tmp_path / "run").mkdir()
    monkeypatch.chdir(tmp_path / "run")
    np.savetxt("data.csv", get_density("two_moons").sample(200, generator=torch.Generator().manual_seed(0)).numpy(), delimiter=",")
    assert main(["train", "--data", "data.csv", "--model", "nice", "--out", "out", *TINY]) == 0
    assert main(["evaluate", "out/model.pt"]) == 0  # from where it trained: the relative path resolves
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["evaluate", "run/out/model.pt"]) != 0
    error = capsys.readouterr().err
    assert "was trained on data.csv, which is not there from" in error and "--data FILE" in error


def test_evaluate_keeps_seed_0_for_a_model_saved_without_one(tmp_path, capsys):
    flow = ctflows.realnvp(features=2, blocks=1)
    ctflows.save(flow, tmp_path / "model.pt", metadata={"data": "two_moons", "dim": 2})  # saved from Python
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "model.pt"), "--n", "300"]) == 0
    assert _printed_kl(capsys) == pytest.approx(ctflows.evaluate(flow, get_density("two_moons"), n=300, seed=0)["kl"], abs=1e-4)


def test_train_into_a_used_directory_names_the_files_it_did_not_write(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("kept")
    assert main(["train", "--data", "two_moons", "--model", "nice", "--out", str(out), *TINY]) == 0
    printed = capsys.readouterr().out
    assert "earlier run, not from this one: notes.txt" in printed and (out / "notes.txt").read_text() == "kept"
    assert main(["train", "--data", "two_moons", "--model", "nice", "--out", str(out), *TINY]) == 0
    note = next(line for line in capsys.readouterr().out.splitlines() if "earlier run" in line)
    assert note.endswith(": notes.txt")  # everything else was written again


def test_evaluate_of_a_file_model_scores_the_rows_train_held_out(tmp_path, monkeypatch, capsys):
    # Without --data, evaluate must re-split the file with the training seed: the same 40 held-out rows, so the
    # same NLL as metrics.json, not rows the model was trained on.
    monkeypatch.chdir(tmp_path)
    np.savetxt("data.csv", get_density("two_moons").sample(200, generator=torch.Generator().manual_seed(0)).numpy(), delimiter=",")
    assert main(["train", "--data", "data.csv", "--model", "nice", "--seed", "4", "--out", "out", *TINY]) == 0
    reported = json.loads((tmp_path / "out" / "metrics.json").read_text())["nll"]
    capsys.readouterr()
    assert main(["evaluate", "out/model.pt"]) == 0
    printed = capsys.readouterr().out
    assert "40 rows of data.csv" in printed
    assert float(printed.split("NLL = ")[1].split()[0]) == pytest.approx(reported, abs=1e-4)


def test_train_on_a_file_of_more_than_two_columns_draws_no_density(tmp_path):
    path = tmp_path / "d3.csv"
    np.savetxt(path, get_density("gaussian_mixture", dim=3).sample(60, generator=torch.Generator().manual_seed(0)).numpy(), delimiter=",")
    assert main(["train", "--data", str(path), "--model", "nice", "--out", str(tmp_path / "out"), *TINY]) == 0
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["dim"] == 3
    assert not (tmp_path / "out" / "density.png").exists() and (tmp_path / "out" / "loss.png").exists()


def test_sample_writes_the_drawn_values_for_the_seed_in_either_format(trained, tmp_path):
    for name, seed in (("a.npy", "5"), ("b.npy", "5"), ("c.csv", "5"), ("d.npy", "6")):
        assert main(["sample", str(trained / "model.pt"), "--n", "50", "--seed", seed, "--out", str(tmp_path / name)]) == 0
    a, b, d = (np.load(tmp_path / name) for name in ("a.npy", "b.npy", "d.npy"))
    np.testing.assert_array_equal(a, b)  # the same seed, the same samples
    assert not np.array_equal(a, d)
    flow = load(trained / "model.pt").eval()
    with torch.no_grad():
        np.testing.assert_array_equal(a, flow.sample(50, generator=torch.Generator().manual_seed(5)).numpy())
    # The CSV holds the same float32 values, to the precision float32 has.
    np.testing.assert_allclose(np.loadtxt(tmp_path / "c.csv", delimiter=","), a, rtol=1e-6, atol=1e-7)


def test_sample_refuses_to_plot_samples_of_more_than_two_dimensions(tmp_path, capsys):
    """A mistake is one error and no output: the samples file is not written either."""
    ctflows.save(ctflows.realnvp(features=3, blocks=1), tmp_path / "m.pt", metadata={"dim": 3})
    assert main(["sample", str(tmp_path / "m.pt"), "--n", "10", "--out", str(tmp_path / "s.csv"), "--plot", str(tmp_path / "s.png")]) == 1
    assert "--plot draws 2-D samples; these have 3 dimensions" in capsys.readouterr().err
    assert not (tmp_path / "s.csv").exists()  # refused before anything was written


def test_evaluate_refuses_data_of_another_dimension_than_the_model_was_trained_on(trained, tmp_path, capsys):
    path = tmp_path / "d3.csv"
    np.savetxt(path, np.random.default_rng(0).normal(size=(20, 3)), delimiter=",")
    capsys.readouterr()
    assert main(["evaluate", str(trained / "model.pt"), "--data", str(path)]) == 1
    assert "trained on 2-dimensional data but" in capsys.readouterr().err


def test_train_seed_sets_the_model_and_evaluate_scores_the_points_train_scored(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--seed seeds training (the same seed trains the same parameters, another seed others), and evaluate without
    --seed reproduces metrics.json's KL for a seed other than 0 (it draws with the model's seed + 1, as train did)."""
    params: dict[str, dict[str, torch.Tensor]] = {}
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        assert main(["train", "--data", "two_moons", "--model", "nice", "--seed", seed, "--out", str(tmp_path / name), *TINY]) == 0
        params[name] = load(tmp_path / name / "model.pt").state_dict()
    assert all(torch.equal(params["a"][key], params["b"][key]) for key in params["a"])
    assert any(not torch.equal(params["a"][key], params["c"][key]) for key in params["a"])
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "a" / "model.pt"), "--n", "500"]) == 0
    assert _printed_kl(capsys) == pytest.approx(json.loads((tmp_path / "a" / "metrics.json").read_text())["kl"], abs=1e-4)


def test_grid_sets_the_resolution_of_the_density_plots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--grid reaches both density panels of density.png (the true one and the model's)."""
    grids: list[int] = []
    density_panel = figures.density_panel

    def recording(*args: Any, **kwargs: Any) -> Any:
        grids.append(kwargs["n"])
        return density_panel(*args, **kwargs)

    monkeypatch.setattr(figures, "density_panel", recording)
    assert main(["train", "--data", "two_moons", "--model", "nice", "--out", str(tmp_path), "--steps", "2", "--grid", "17"]) == 0
    assert grids == [17, 17] and (tmp_path / "density.png").stat().st_size > 0


def test_sample_creates_the_folder_it_writes_into(trained: Path, tmp_path: Path) -> None:
    """--out in a folder that does not exist yet: the folders are made and the samples written there."""
    out = tmp_path / "new" / "deeper" / "s.npy"
    assert main(["sample", str(trained / "model.pt"), "--n", "7", "--out", str(out)]) == 0
    assert np.load(out).shape == (7, 2)


def test_evaluate_reports_the_nfe_of_a_continuous_model_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The solver's function evaluations are printed for a CNF, and no such line for a discrete flow."""
    printed: dict[str, str] = {}
    for name, flow in (("cnf", ctflows.cnf(2, hidden=(8,))), ("realnvp", ctflows.realnvp(2, blocks=1))):
        ctflows.save(flow, tmp_path / f"{name}.pt", metadata={"data": "two_moons", "dim": 2, "seed": 0})
        capsys.readouterr()
        assert main(["evaluate", str(tmp_path / f"{name}.pt"), "--n", "50"]) == 0
        printed[name] = capsys.readouterr().out
    assert int(printed["cnf"].split("NFE of the last log_prob batch: ")[1]) >= 2
    assert "NFE" not in printed["realnvp"]


def test_evaluate_asks_for_data_when_the_model_does_not_say_what_it_was_trained_on(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without --data, a model saved with no record of its data is a one-line error asking for --data, not a KeyError."""
    ctflows.save(ctflows.realnvp(features=2, blocks=1), tmp_path / "model.pt")  # saved from Python, no metadata
    assert main(["evaluate", str(tmp_path / "model.pt")]) == 1
    assert "does not say what data it was trained on; give --data NAME|FILE" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "model.pt"), "--data", "two_moons", "--n", "100"]) == 0


def test_compare_records_the_command_as_it_was_typed(tmp_path: Path) -> None:
    """report.json's "command" is the argument list given to ctflows, so the run can be repeated."""
    argv = ["compare", "--data", "two_moons", "--models", "nice", "--steps", "2", "--eval-samples", "200", "--grid", "12",
            "--out", str(tmp_path)]
    assert main(argv) == 0
    assert json.loads((tmp_path / "report.json").read_text())["command"] == "ctflows " + " ".join(argv)
