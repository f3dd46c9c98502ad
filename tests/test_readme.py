"""The README's usage examples must run as written (in a temporary directory) and learn something."""
import math
import re

import torch

from doc_blocks import ROOT, python_blocks

README = ROOT / "README.md"


def test_readme_usage_example_runs(tmp_path, monkeypatch, capsys):
    blocks = python_blocks(README)
    assert blocks, "README.md has no python example"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:  # in order: later blocks use names the first one made
        exec(block.compiled(), namespace)
    printed = capsys.readouterr().out
    kl = float(re.search(r"KL = ([-0-9.]+)", printed).group(1))
    assert kl < 0.5, printed  # 1,000 steps on two moons: a working model is far below this
    assert (tmp_path / "moons.pt").exists()
    # The flow-matching block: a model of the rescaled data (KL 0.34 measured; a wrong sign of the
    # standardisation's log-det would be off by 2 Σ log σ_i, about 16 nats here).
    fm, data = namespace["fm"], namespace["data"]
    fm.eval()
    x = data.sample(2000, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        log_q = fm.log_prob(50 * x + torch.tensor([300.0, -1000.0]))
    kl = float((data.log_prob(x) - 2 * math.log(50.0) - log_q).mean())
    assert kl < 0.5, kl
