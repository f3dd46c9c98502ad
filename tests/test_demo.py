"""`make demo` runs ctflows.demo; a tiny budget checks it end to end (KL printed, figure and checkpoint written)."""
import re

from ctflows import demo, load


def test_demo_runs_and_writes_its_outputs(tmp_path, capsys):
    assert demo.main(["--steps", "30", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"KL\(p \|\| q\) = [0-9.]+ ± [0-9.]+ nats", printed), printed
    assert (tmp_path / "demo.png").stat().st_size > 10_000
    assert load(tmp_path / "realnvp.pt").log_prob is not None
