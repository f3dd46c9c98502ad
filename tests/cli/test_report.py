"""report.md shows, in each column, the number measured for it; the note under the table states the measured n;
the figure and animations are linked, and report.json keeps the rows and notes."""
import json
import math

from ctflows.cli.report import table, write_report

ROW = {  # every number distinct, so a value shown in the wrong column is seen
    "model": "m", "kl": 0.12345, "kl_se": 0.01234, "nll": 2.5, "nll_se": 0.04, "bpd": 3.25, "bpd_se": 0.02,
    "parameters": 12345, "steps": 678, "batch_size": 91, "lr": 0.0025, "train_seconds": 43.21,
    "seconds_per_step": 0.0123, "eval_nfe": 37.4, "samples_per_second": 98765.4, "eval_points": 432, "speed_samples": 250,
}
HEADER = {"data": "two_moons", "dim": 2, "seed": 0, "budget": "3 steps", "device": "cpu", "machine": "x",
          "command": "ctflows compare", "known_density": True}


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
    header = {**HEADER, "data": "digits", "dim": 64, "image": True, "levels": 17, "known_density": False}
    md, js = write_report(tmp_path, header, [ROW], ["a note"])
    text = md.read_text()
    assert "of the 432 held-out images" in text and f"log2 17 = {math.log2(17):.3f}" in text and "- a note" in text
    md, js = write_report(tmp_path, HEADER, [ROW], [])
    assert "Monte Carlo over 432 fresh samples" in md.read_text()
    assert json.loads(js.read_text())["models"] == [ROW]
    unknown = {key: value for key, value in HEADER.items() if key != "known_density"}  # a density not said to be known
    md, _ = write_report(tmp_path, unknown, [ROW], [])
    assert "negative log-likelihood of the 432 held-out test rows" in md.read_text() and "test NLL (nats)" in md.read_text()


def test_the_note_states_how_many_samples_the_speed_was_timed_on(tmp_path):
    """The sampling-speed note gives the rows' own number of timed samples (100 for images, 10,000 otherwise)."""
    md, _ = write_report(tmp_path, HEADER, [{"model": "x", "error": "failed"}, ROW], [])
    assert "samples / s: 250 samples in eval mode" in md.read_text()


def test_the_figure_and_each_animation_are_linked_and_the_notes_kept(tmp_path):
    """report.md links the figure (none when there is none) and each model's GIF; report.json keeps the notes."""
    header = {**HEADER, "figure": "figure.png", "animations": {"cnf": "cnf_density.gif", "cnf-fm": "cnf-fm_density.gif"}}
    md, js = write_report(tmp_path, header, [ROW], ["first", "second"])
    text = md.read_text()
    assert "](figure.png)" in text and "![cnf](cnf_density.gif)" in text and "![cnf-fm](cnf-fm_density.gif)" in text
    assert json.loads(js.read_text())["notes"] == ["first", "second"] and "- first\n- second" in text
    md, _ = write_report(tmp_path, HEADER, [ROW], [])
    assert "![" not in md.read_text()
