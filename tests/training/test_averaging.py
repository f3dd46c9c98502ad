"""The parameter average: its arithmetic, and how ``fit(ema_decay=...)`` evaluates, saves, returns and resumes it."""
from __future__ import annotations

import importlib

import pytest
import torch

from ctflows.errors import CheckpointError, ConfigurationError
from ctflows.training import fit, load
from ctflows.training.averaging import ParameterAverage
from training.fakes import CorrelatedGaussian, affine_flow


def test_average_follows_the_recursion_and_swaps_back():
    param = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    average = ParameterAverage([param], decay=0.75)
    expected = param.detach().clone()
    for value in ([3.0, 0.0], [-1.0, 5.0], [0.5, 0.5]):
        with torch.no_grad():
            param.copy_(torch.tensor(value))
        average.update()
        expected = 0.75 * expected + 0.25 * torch.tensor(value)
    torch.testing.assert_close(average.averaged[0], expected)
    with average.applied():
        torch.testing.assert_close(param.detach(), expected)
    assert torch.equal(param.detach(), torch.tensor([0.5, 0.5]))  # its own value is back after the block


@pytest.mark.parametrize("decay", [0, 1, -0.5, 1.5, float("nan"), True, "0.9"])
def test_decay_outside_the_open_unit_interval_is_refused(decay):
    with pytest.raises(ConfigurationError, match="ema_decay"):
        fit(affine_flow(), CorrelatedGaussian(), steps=2, batch_size=8, ema_decay=decay)


def test_fit_returns_and_saves_the_average_of_its_iterates(tmp_path):
    torch.manual_seed(0)
    flow, data = affine_flow(), CorrelatedGaussian()
    iterates = [[p.detach().clone() for p in flow.parameters()]]  # θ̄ starts at the initial (data-initialised) θ

    def record(step, history):
        iterates.append([p.detach().clone() for p in flow.parameters()])

    decay = 0.8
    fit(flow, data, steps=12, batch_size=32, seed=3, lr=1e-2, ema_decay=decay, callback=record, checkpoint_dir=tmp_path)
    expected = iterates[0]
    for values in iterates[1:]:
        expected = [decay * e + (1 - decay) * v for e, v in zip(expected, values)]
    for param, want in zip(flow.parameters(), expected):
        torch.testing.assert_close(param.detach(), want)
    assert not all(torch.equal(p.detach(), v) for p, v in zip(flow.parameters(), iterates[-1]))  # not the last iterate
    saved = load(tmp_path / "model.pt")
    for a, b in zip(saved.parameters(), flow.parameters()):
        assert torch.equal(a, b)


def test_the_final_evaluation_is_of_the_average(tmp_path, monkeypatch):
    fit_module = importlib.import_module("ctflows.training.fit")  # the package's ``fit`` is the function

    seen = []
    monkeypatch.setattr(fit_module, "evaluate", lambda flow, *a, **k: seen.append(
        [p.detach().clone() for p in flow.parameters()]) or {"nll": 0.0})
    flow = affine_flow()
    fit(flow, CorrelatedGaussian(), steps=6, batch_size=16, seed=0, ema_decay=0.5, eval_data=CorrelatedGaussian())
    for evaluated, returned in zip(seen[-1], flow.parameters()):
        assert torch.equal(evaluated, returned.detach())


def test_resumed_run_with_an_average_matches_an_uninterrupted_one(tmp_path):
    def run(stop_at: int | None, resume: bool):
        torch.manual_seed(0)
        flow = affine_flow()
        stop = (lambda step, h: step == stop_at) if stop_at else None
        fit(flow, CorrelatedGaussian(), steps=20, batch_size=32, seed=1, ema_decay=0.9, callback=stop,
            checkpoint_dir=tmp_path, resume=resume)
        return flow

    whole = run(None, resume=False)
    for path in tmp_path.iterdir():
        path.unlink()
    run(8, resume=False)
    resumed = run(None, resume=True)
    for a, b in zip(whole.parameters(), resumed.parameters()):
        assert torch.equal(a, b)


def test_resume_refuses_a_changed_or_missing_average(tmp_path):
    fit(affine_flow(), CorrelatedGaussian(), steps=3, batch_size=16, seed=0, checkpoint_dir=tmp_path)
    with pytest.raises(ConfigurationError, match="ema_decay: None then, 0.9 now"):
        fit(affine_flow(), CorrelatedGaussian(), steps=3, batch_size=16, seed=0, checkpoint_dir=tmp_path,
            resume=True, ema_decay=0.9)
    state = torch.load(tmp_path / "training_state.pt", weights_only=True)
    del state["config"]["ema_decay"]  # a checkpoint from before the option existed
    torch.save(state, tmp_path / "training_state.pt")
    with pytest.raises(ConfigurationError, match="kept no parameter average"):
        fit(affine_flow(), CorrelatedGaussian(), steps=3, batch_size=16, seed=0, checkpoint_dir=tmp_path,
            resume=True, ema_decay=0.9)


def test_averages_of_another_model_are_refused():
    average = ParameterAverage([torch.zeros(3)], decay=0.9)
    with pytest.raises(CheckpointError, match="do not match"):
        average.load_state_dict({"decay": 0.9, "averaged": [torch.zeros(4)]})
