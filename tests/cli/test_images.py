"""`ctflows compare/train/evaluate/sample` on the 8×8 digits: bits/dim rows, the image figure, and the model-kind errors."""
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from ctflows.cli.compare import image_split_note
from ctflows.cli.dataset import load_dataset
from ctflows.cli.main import main
from ctflows.cli.models import MODELS
from ctflows.data.images import load_digits
from ctflows.image import bits_per_dim, nats_to_bits_per_dim
from ctflows.training import load

pytest.importorskip("sklearn")

TINY = ["--steps", "3", "--eval-samples", "32"]
IMAGE_MODELS = ["glow", "cnf-image"]
VECTOR_MODELS = [name for name in MODELS if name not in IMAGE_MODELS]


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("compare_digits")
    status = main(["compare", "--data", "digits", "--models", ",".join(IMAGE_MODELS), "--out", str(out), *TINY])
    return status, out, json.loads((out / "report.json").read_text())


def test_compare_on_digits_reports_bits_per_dim_per_model(image_run):
    status, _, report = image_run
    assert status == 0
    assert report["image"] and report["levels"] == 17 and report["dim"] == 64
    assert [row["model"] for row in report["models"]] == IMAGE_MODELS
    for row in report["models"]:
        assert math.isfinite(row["bpd"]) and 0 < row["bpd_se"] < row["bpd"], row
        assert row["eval_points"] == 32 and row["kl"] is None
        # bits/dim and the NLL of the dequantized pixels on [0, 1)^64 are one number in two units.
        assert row["bpd"] == pytest.approx(nats_to_bits_per_dim(row["nll"], 64, 17), rel=1e-9)
    glow, cnf = report["models"]
    assert glow["eval_nfe"] is None and cnf["eval_nfe"] >= 2


def test_compare_on_digits_writes_the_image_figure_and_no_animation(image_run):
    _, out, report = image_run
    assert report["figure"] == "figure.png" and report["animations"] == {}
    assert not list(out.glob("*.gif"))
    with Image.open(out / "figure.png") as image:
        width, height = image.size
    assert height > 2 * width  # held-out digits, then one row per model
    markdown = (out / "report.md").read_text()
    assert "](figure.png)" in markdown and "test bits/dim" in markdown
    assert sum(line.startswith(("| glow ", "| cnf-image ")) for line in markdown.splitlines()) == 2


def test_saved_image_model_reproduces_the_reported_bits_per_dim(image_run, capsys):
    _, out, report = image_run
    held_out = load_digits()[-297:]
    flow = load(out / "models" / "glow.pt", map_location="cpu")
    # measure scores the first --eval-samples held-out digits with seed + 1.
    assert bits_per_dim(flow, held_out[:32], 17, seed=1)["bpd"] == pytest.approx(report["models"][0]["bpd"], rel=1e-6)
    capsys.readouterr()
    assert main(["evaluate", str(out / "models" / "glow.pt")]) == 0
    printed = capsys.readouterr().out
    assert "297 images of digits" in printed and "per image, of the dequantized pixels scaled to [0, 1)" in printed
    bpd = float(printed.split("bits/dim = ")[1].split()[0])
    # by default with the dequantization noise measure used: the model's seed + 1
    assert bpd == pytest.approx(bits_per_dim(flow, held_out, 17, seed=1)["bpd"], abs=1e-4)


def test_sample_from_an_image_model_writes_flat_rows_and_an_image_grid(image_run, tmp_path):
    _, out, _ = image_run
    table, grid = tmp_path / "samples.npy", tmp_path / "samples.png"
    assert main(["sample", str(out / "models" / "glow.pt"), "--n", "12", "--out", str(table), "--plot", str(grid)]) == 0
    x = np.load(table)
    assert x.shape == (12, 64) and np.isfinite(x).all()
    with Image.open(grid) as image:
        assert min(image.size) > 100


def test_train_on_digits_writes_metrics_and_a_sample_grid(tmp_path):
    argv = ["train", "--data", "digits", "--model", "glow", "--batch-size", "16", "--lr", "2e-3", "--out", str(tmp_path), *TINY]
    assert main(argv) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["data"] == "digits" and metrics["steps"] == 3 and math.isfinite(metrics["bpd"])
    assert metrics["batch_size"] == 16 and metrics["lr"] == 2e-3
    # Image batches come from the data set: it yields what --batch-size asked for, and fit is told so.
    assert next(iter(load_dataset("digits", 0, image_batch=16).train)).shape[0] == 16
    state = torch.load(tmp_path / "checkpoint" / "training_state.pt", weights_only=False)
    assert (state["config"]["batch_size"], state["config"]["lr"]) == (16, 2e-3)
    assert (tmp_path / "samples.png").stat().st_size > 0 and (tmp_path / "model.pt").exists()


@pytest.mark.parametrize(
    "argv, valid",
    [
        (["compare", "--data", "digits", "--models", "realnvp"], IMAGE_MODELS),
        (["train", "--data", "digits", "--model", "cnf"], IMAGE_MODELS),
        (["compare", "--data", "two_moons", "--models", "glow"], VECTOR_MODELS),
        (["compare", "--data", "two_moons", "--models", "realnvp,glow"], VECTOR_MODELS),  # every name checked, not the first
    ],
)
def test_a_model_of_the_other_kind_is_a_one_line_error_listing_the_valid_names(argv, valid, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([*argv, "--steps", "1", "--out", str(out)]) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err
    assert lines[0].endswith("choose from " + ", ".join(valid))
    assert not out.exists()  # refused before anything was trained or written


def test_the_report_states_the_digits_split(image_run):
    _, out, _ = image_run
    # --eval-samples 32 of the 297 held-out images: the note says which were scored, as the table's eval_points do
    text = (out / "report.md").read_text()
    assert "Trained on the first 1,500 images (freshly dequantized each pass) and tested on the first 32 of the last 297." in text


@pytest.mark.parametrize("eval_samples", [297, 5000])
def test_the_split_note_says_every_held_out_image_when_all_are_scored(eval_samples: int) -> None:
    """--eval-samples at or above the held-out count scores all of them, and the note says so (no "first N of")."""
    assert image_split_note(1500, 297, eval_samples) == (
        "Trained on the first 1,500 images (freshly dequantized each pass) and tested on the last 297.")
    assert image_split_note(1500, 297, 296).endswith("tested on the first 296 of the last 297.")
