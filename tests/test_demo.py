"""`make demo` runs ctflows.demo, i.e. `ctflows compare`; a budget of a fraction of a second per model checks it end to end."""
import json
import math

from ctflows import demo, load

TINY = ["--minutes", "0.005", "--eval-samples", "300", "--grid", "20", "--frames", "2", "--animation-grid", "10"]


def test_demo_compares_the_models_and_says_where_the_report_is(tmp_path, capsys):
    assert demo.main(["--out", str(tmp_path), *TINY]) == 0
    printed = capsys.readouterr().out
    assert f"open {tmp_path}/report.md" in printed
    report = json.loads((tmp_path / "report.json").read_text())
    assert [row["model"] for row in report["models"]] == demo.MODELS.split(",")
    assert all(math.isfinite(row["kl"]) and row["steps"] >= 1 for row in report["models"])
    assert report["budget_seconds"] == 0.3 and report["data"] == "eight_gaussians"
    assert (tmp_path / "figure.png").stat().st_size > 10_000
    assert set(report["animations"]) == {"cnf", "cnf-fm"}
    assert load(tmp_path / "models" / "realnvp.pt").log_prob is not None


def test_demo_defaults_and_extra_flags_reach_compare(monkeypatch, capsys):
    commands = []
    monkeypatch.setattr(demo, "ctflows_main", lambda argv: commands.append(argv) or 0)
    assert demo.main(["--grid", "20"]) == 0
    assert commands == [["compare", "--data", "eight_gaussians", "--models", "realnvp,spline,cnf,cnf-fm",
                         "--minutes", "0.75", "--out", "demo-output", "--grid", "20"]]
    assert "open demo-output/report.md" in capsys.readouterr().out
    monkeypatch.setattr(demo, "ctflows_main", lambda argv: 1)
    assert demo.main([]) == 1 and "Done" not in capsys.readouterr().out
