"""`ctflows train` under torchrun: two processes train together, rank 0 alone prints and writes."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_train_under_torchrun_writes_once(tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "ctflows.cli", "train", "--data", "two_moons", "--model", "realnvp", "--steps", "6",
               "--out", str(tmp_path / "run")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240,
                          env={"PATH": "", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("Training realnvp") == 1 and done.stdout.count("Model:") == 1
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["steps"] == 6
