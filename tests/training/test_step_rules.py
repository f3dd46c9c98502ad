"""What each of fit's steps really does, read from the optimizer and the parameters rather than from the history:
the learning rate the optimizer steps with, the clipped gradient, the weight decay, and the evaluation points."""
from __future__ import annotations

import math

import pytest
import torch

from ctflows.training import fit
from training.fakes import CorrelatedGaussian, affine_flow


class RecordingSGD(torch.optim.SGD):
    """SGD that notes, at each step, the learning rate it steps with and the gradients it is given."""

    def __init__(self, params, lr, weight_decay=0.0):
        super().__init__(params, lr=lr, weight_decay=weight_decay)
        self.seen_lr: list[float] = []
        self.seen_grads: list[list[torch.Tensor]] = []

    def step(self, closure=None):
        self.seen_lr.append(self.param_groups[0]["lr"])
        self.seen_grads.append([p.grad.detach().clone() for p in self.param_groups[0]["params"]])
        return super().step(closure)


class Frozen(torch.optim.SGD):
    """An optimizer that never changes the parameters."""

    def step(self, closure=None):
        return None


def recording(store: list) -> type:
    """A RecordingSGD class whose instances are appended to ``store`` (fit makes the optimizer itself)."""

    class Recorded(RecordingSGD):
        def __init__(self, params, lr, weight_decay=0.0):
            super().__init__(params, lr, weight_decay)
            store.append(self)

    return Recorded


def scheduled(s: int, steps: int, warmup: int | float) -> float:
    """The documented factor of step s (0-based): a ramp (s + 1) / W, then ½ (1 + cos(π (s − W) / (S − W))); a
    float ``warmup`` is a fraction of the steps, W = warmup · S."""
    if isinstance(warmup, float):
        warmup = warmup * steps
    if s + 1 < warmup:
        return (s + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * max(s - warmup, 0) / (steps - warmup)))


def timed(before: float, last: float, seconds: float, warmup: float) -> float:
    """The documented factor of a step under a ``seconds`` budget, ``before`` seconds spent and the last step
    having taken ``last``: p⁺ = (before + last) / T ramps up to the fraction ``warmup``, then the cosine
    follows p⁻ = before / T (both capped at 1)."""
    after, spent = min((before + last) / seconds, 1.0), min(before / seconds, 1.0)
    if after < warmup:
        return after / warmup
    return 0.5 * (1 + math.cos(math.pi * (max(spent, warmup) - warmup) / (1 - warmup)))


@pytest.mark.parametrize("warmup", [0, 3, 0.0, 0.3])  # the fractions are the same schedules as the step counts
def test_the_optimizer_steps_with_the_scheduled_learning_rate(warmup):
    made: list[RecordingSGD] = []
    lr, steps = 0.02, 10
    history = fit(affine_flow(), CorrelatedGaussian(), steps=steps, batch_size=16, seed=0, lr=lr, warmup=warmup,
                  optimizer=recording(made), clip_grad=None)
    (opt,) = made
    want = [lr * scheduled(s, steps, warmup) for s in range(steps)]
    assert opt.seen_lr == pytest.approx(want, rel=1e-12)
    assert history.lr == pytest.approx(opt.seen_lr, rel=1e-12)  # the history reports what was used


def test_under_a_seconds_budget_each_step_takes_the_rate_of_the_time_spent_and_the_last_steps_length():
    """fit lays the schedule over the clock it keeps: step k's rate follows from the seconds before it and the
    length of step k − 1 (nothing for the first step), both read from ``trained_seconds`` after each step."""
    made: list[RecordingSGD] = []
    lr, seconds, warmup, spent = 0.02, 0.3, 0.5, [0.0]
    fit(affine_flow(), CorrelatedGaussian(), steps=None, seconds=seconds, batch_size=16, seed=0, lr=lr, warmup=warmup,
        optimizer=recording(made), clip_grad=None, callback=lambda step, history: spent.append(history.trained_seconds))
    lengths = [0.0] + [b - a for a, b in zip(spent, spent[1:])]  # before step k: the length of step k − 1
    want = [lr * timed(spent[k], lengths[k], seconds, warmup) for k in range(len(spent) - 1)]
    assert len(want) > 5 and made[0].seen_lr == pytest.approx(want, rel=1e-9, abs=1e-12)


def test_the_update_is_made_from_the_gradient_clipped_to_clip_grad():
    # SGD at a constant lr: each step moves the parameters by −lr × (gradient rescaled to norm clip_grad when longer).
    made: list[RecordingSGD] = []
    clip, lr = 0.05, 0.1
    flow = affine_flow()
    with torch.no_grad():
        flow.transform.loc.copy_(torch.tensor([3.0, -2.0]))  # far from the data: gradients much longer than clip
    before = [p.detach().clone() for p in flow.parameters()]
    history = fit(flow, CorrelatedGaussian(), steps=1, batch_size=64, seed=0, lr=lr, schedule="constant", warmup=0,
                  optimizer=recording(made), clip_grad=clip)
    grads = made[0].seen_grads[0]
    norm = math.sqrt(sum(float((g**2).sum()) for g in grads))
    assert history.grad_norm[0] > 10 * clip  # recorded before clipping
    assert norm == pytest.approx(clip, rel=1e-5)
    for p, p0, g in zip(flow.parameters(), before, grads):
        torch.testing.assert_close(p.detach(), p0 - lr * g)


def test_weight_decay_is_what_was_asked_for():
    # One AdamW step from the same point on the same batch: runs with decay λ and without differ by exactly
    # the decoupled decay, −lr λ θ₀ (the Adam part sees the same gradient in both).
    lr, decay = 0.01, 0.5
    start = {"transform.loc": torch.tensor([0.3, -1.2]), "transform.log_scale": torch.tensor([0.2, -0.1])}
    after = {}
    for wd in (0.0, decay):
        flow = affine_flow()
        flow.load_state_dict(start)
        fit(flow, CorrelatedGaussian(), steps=1, batch_size=64, seed=0, lr=lr, schedule="constant", warmup=0,
            weight_decay=wd, optimizer="adamw")
        after[wd] = {k: v.detach().clone() for k, v in flow.state_dict().items()}
    for name, value in start.items():
        torch.testing.assert_close(after[decay][name] - after[0.0][name], -lr * decay * value, rtol=1e-4, atol=1e-7)


def test_every_evaluation_scores_the_same_points():
    # The parameters never move, so evaluations at different steps must agree exactly when they use the same
    # points, as fit promises ("the same points at every evaluation so that the numbers compare").
    p = CorrelatedGaussian()
    history = fit(affine_flow(), p, steps=6, batch_size=16, seed=0, optimizer=Frozen, eval_data=p, eval_every=2,
                  eval_samples=200)
    assert [e["step"] for e in history.evals] == [2, 4, 6]
    assert len({e["kl"] for e in history.evals}) == 1 and len({e["nll"] for e in history.evals}) == 1
