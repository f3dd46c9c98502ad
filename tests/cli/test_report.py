"""report.md shows, in each column, the number measured for it; the note under the table states the measured n."""
import json
import math

from ctflows.cli.report import table, write_report

ROW = {  # every number distinct, so a value shown in the wrong column is seen
    "model": "m", "kl": 0.12345, "kl_se": 0.01234, "nll": 2.5, "nll_se": 0.04, "bpd": 3.25, "bpd_se": 0.02,
    "parameters": 12345, "steps": 678, "batch_size": 91, "lr": 0.0025, "train_seconds": 43.21,
    "seconds_per_step": 0.0123, "eval_nfe": 37.4, "samples_per_second": 98765.4, "eval_points": 432,
}


def _cells(markdown):
    head, _, row = [line for line in markdown.splitlines() if line.startswith("|")]
    names = [c.strip() for c in head.strip("|").split("|")]
    return dict(zip(names, (c.strip() for c in row.strip("|").split("|"))))


def test_each_column_shows_its_own_number():
    cells = _cells(table([ROW], known_density=True))
    assert cells == {
        "model": "m", "KL (nats)": "0.123 ± 0.012", "parameters": "12,345", "steps": "678", "batch": "91",
        "peak lr": "0.0025", "training (s)": "43.2", "ms / step": "12.3", "eval NFE": "37", "samples / s": "98,765",
    }


def test_the_quality_column_follows_the_data():
    assert _cells(table([ROW], known_density=False))["test NLL (nats)"] == "2.500 ± 0.040"
    assert _cells(table([ROW], known_density=False, image=True))["test bits/dim"] == "3.250 ± 0.020"
    missing = {**ROW, "seconds_per_step": None, "eval_nfe": None, "kl_se": None}
    cells = _cells(table([missing], known_density=True))
    assert (cells["KL (nats)"], cells["ms / step"], cells["eval NFE"]) == ("0.123", "—", "—")


def test_the_note_states_the_measured_number_of_points_and_the_uniform_score(tmp_path):
    header = {"data": "digits", "dim": 64, "seed": 0, "budget": "3 steps", "device": "cpu", "machine": "x",
              "command": "ctflows compare", "image": True, "levels": 17}
    md, js = write_report(tmp_path, header, [ROW], ["a note"])
    text = md.read_text()
    assert "of the 432 held-out images" in text and f"log2 17 = {math.log2(17):.3f}" in text and "- a note" in text
    header = {**header, "data": "two_moons", "dim": 2, "image": False, "levels": None, "known_density": True}
    md, js = write_report(tmp_path, header, [ROW], [])
    assert "Monte Carlo over 432 fresh samples" in md.read_text()
    assert json.loads(js.read_text())["models"] == [ROW]
