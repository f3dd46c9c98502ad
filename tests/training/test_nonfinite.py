"""Non-finite steps: skipped without touching the model, counted, rolled back on request, and fatal
(with a usable checkpoint) only after too many in a row."""
from __future__ import annotations

import copy
import itertools
import math
import re
import weakref

import pytest
import numpy as np
import torch

from ctflows.core import Flow, StandardNormal
from ctflows.errors import ConfigurationError, TrainingError
from ctflows.training import fit, load
from ctflows.training.averaging import ParameterAverage
from ctflows.training.nonfinite import NonFiniteGuard
from training.fakes import CorrelatedGaussian, ElementwiseAffine, Flaky
from training.recorded_writes import record_state_writes
from training.same_parameters import assert_same_parameters


def flaky_flow(bad_calls: set[int]) -> Flow:
    return Flow(Flaky(2, bad_calls), StandardNormal(2))


def test_bad_steps_are_skipped_counted_and_leave_the_model_alone():
    # Call 1 is fit's initialising pass, so calls 4 and 5 are steps 3 and 4.
    flow = flaky_flow({4, 5})
    seen = {}

    def watch(step, history):
        seen[step] = [p.detach().clone() for p in flow.parameters()]

    history = fit(flow, CorrelatedGaussian(), steps=8, batch_size=32, seed=0, callback=watch)
    assert history.skipped == [3, 4] and history.steps == 8
    for step in (3, 4):
        assert all(torch.equal(a, b) for a, b in zip(seen[step - 1], seen[step])), "a skipped step moved the model"
    assert not all(torch.equal(a, b) for a, b in zip(seen[5], seen[6]))  # training goes on afterwards
    assert all(torch.isfinite(p).all() for p in flow.parameters())


def test_too_many_in_a_row_stops_with_a_loadable_checkpoint(tmp_path, monkeypatch):
    """The state is written once on the way out, with the time the run took."""
    written = record_state_writes(monkeypatch)
    flow = flaky_flow(set(range(6, 100)))
    with pytest.raises(TrainingError, match=r"3 non-finite step\(s\) in a row.*last good state is in"):
        fit(flow, CorrelatedGaussian(), steps=50, batch_size=32, seed=0, max_bad_steps=3, checkpoint_dir=tmp_path)
    # calls 6 on fail (call 1 is the initialising pass): steps 5, 6 and 7 are bad, the third in a row stops the run
    assert len(written) == 1 and written[0]["step"] == 7 and written[0]["history"]["wall_time"] > 0
    saved = load(tmp_path / "model.pt")
    assert_same_parameters(saved, flow)
    assert all(torch.isfinite(p).all() for p in saved.parameters())
    saved.transform.bad_calls = set()  # the fake's own fault, not the saved state's
    assert torch.isfinite(saved.log_prob(torch.zeros(4, 2))).all()


def test_restore_rolls_back_to_the_last_checkpoint(tmp_path):
    flow = flaky_flow({9})  # step 8
    kept = {}

    def watch(step, history):
        if step == 5:
            kept["checkpoint"] = [p.detach().clone() for p in flow.parameters()]
        if step == 8:
            kept["after_bad"] = [p.detach().clone() for p in flow.parameters()]

    history = fit(flow, CorrelatedGaussian(), steps=10, batch_size=32, seed=0, on_nonfinite="restore",
                  checkpoint_dir=tmp_path, checkpoint_every=5, callback=watch)
    assert history.skipped == [8]
    assert all(torch.equal(a, b) for a, b in zip(kept["checkpoint"], kept["after_bad"]))


def test_policy_is_checked():
    with pytest.raises(ConfigurationError, match="on_nonfinite"):
        fit(flaky_flow(set()), CorrelatedGaussian(), steps=2, on_nonfinite="ignore")


@pytest.mark.parametrize("weighted", [True, False])
def test_a_skipped_steps_graph_is_freed_before_the_next_step(weighted):
    # A skipped step never runs backward, so nothing frees its graph but fit dropping its references:
    # its own (the loss), and the layers' (a regularization term in their stats, as a CNF's RNODE terms).
    outputs, penalties = [], []

    class Watched(Flaky):
        def _forward(self, x, context):
            z, logdet = super()._forward(x, context)
            held = torch.ones_like(logdet, requires_grad=True)  # saved by the product's backward node only
            outputs.append(weakref.ref(held))
            scale = torch.ones((), requires_grad=True)
            penalties.append(weakref.ref(scale))
            self.stats["regularization"] = {"penalty": (scale * z.square()).mean()}
            return z, logdet * held

    flow = Flow(Watched(2, {4}), StandardNormal(2))
    alive = {}

    def watch(step, history):
        alive[step] = (outputs[-1]() is not None, penalties[-1]() is not None)
        assert float(flow.transform.stats["regularization"]["penalty"]) > 0  # the value stays readable

    history = fit(flow, CorrelatedGaussian(), steps=5, batch_size=32, seed=0, callback=watch,
                  regularization={"penalty": 0.1} if weighted else None)
    assert history.skipped == [3]
    assert alive[3] == (False, False), "the skipped step's graph outlived the step"


def _adam_run(average: bool = False):
    """A small model, its AdamW optimizer (moments updated in place) and, if asked, a parameter average, with a
    ``step()`` that moves all of them; two steps taken so that every state is non-trivial."""
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    avg = ParameterAverage(model.parameters(), 0.9) if average else None

    def step() -> None:
        opt.zero_grad()
        model(torch.randn(8, 2)).square().mean().backward()
        opt.step()
        if avg is not None:
            avg.update()

    step(), step()
    return model, opt, avg, step


def test_restore_returns_to_the_exact_remembered_state_every_time():
    # optimizer.state_dict() and load_state_dict share tensors with the live optimizer, whose moments change in
    # place: the snapshot must be a copy when taken and when given back, or steps before the first restore, or
    # between two restores, change what the next restore returns. The model and the average come back exactly too.
    model, opt, average, step = _adam_run(average=True)
    guard = NonFiniteGuard("restore", max_bad_steps=10)

    def remember() -> tuple:
        guard.remember(model, opt, average)
        return copy.deepcopy((model.state_dict(), opt.state_dict(), average.state_dict()))

    def assert_restored(saved: tuple) -> None:
        torch.testing.assert_close(model.state_dict(), saved[0], rtol=0, atol=0)
        torch.testing.assert_close(opt.state_dict(), saved[1], rtol=0, atol=0)
        torch.testing.assert_close(average.state_dict(), saved[2], rtol=0, atol=0)

    saved = remember()
    for _ in range(2):
        step(), step(), step()
        assert not torch.equal(model.weight, saved[0]["weight"])  # the live state has moved away
        guard.bad_step(model, opt, average)
        assert_restored(saved)
    step()
    later = remember()  # a later checkpoint replaces the state restore returns to
    step(), step()
    guard.bad_step(model, opt, average)
    assert_restored(later)


def test_bad_steps_in_a_row_are_counted_and_one_too_many_is_reported():
    """bad_step says True at the max_bad_steps-th bad step in a row (at the first under "raise"); a good step
    starts the count again."""
    model, opt, _, _ = _adam_run()
    guard = NonFiniteGuard("skip", max_bad_steps=3)
    verdicts = []
    for bad in (True, True, False, True, True, True):
        if bad:
            verdicts.append(guard.bad_step(model, opt))
        else:
            guard.good_step()
        verdicts.append(guard.in_a_row)
    assert verdicts == [False, 1, False, 2, 0, False, 1, False, 2, True, 3]
    assert NonFiniteGuard("raise", max_bad_steps=3).bad_step(model, opt) is True


def test_restore_with_nothing_remembered_counts_the_step_and_leaves_the_state_alone():
    """Under "restore", a bad step before any state was remembered has nothing to roll back to: it is counted and the
    model and optimizer keep the state they have."""
    model, opt, _, _ = _adam_run()
    before = copy.deepcopy((model.state_dict(), opt.state_dict()))
    guard = NonFiniteGuard("restore", max_bad_steps=2)
    assert guard.bad_step(model, opt) is False and guard.bad_step(model, opt) is True and guard.in_a_row == 2
    torch.testing.assert_close((model.state_dict(), opt.state_dict()), before, rtol=0, atol=0)


def test_a_resumed_count_is_the_count_of_replaying_the_run():
    """resume_count(skipped, steps) leaves the count that good_step/bad_step give over steps 1..steps, for every
    pattern of skipped steps in runs of up to 6 steps (all bad included)."""
    model, opt, _, _ = _adam_run()
    for steps in range(7):
        for skipped in itertools.chain.from_iterable(itertools.combinations(range(1, steps + 1), k) for k in range(steps + 1)):
            replay = NonFiniteGuard("skip", max_bad_steps=100)
            for step in range(1, steps + 1):
                if step in skipped:
                    replay.bad_step(model, opt)
                else:
                    replay.good_step()
            resumed = NonFiniteGuard("skip", max_bad_steps=100)
            resumed.resume_count(list(skipped), steps)
            assert resumed.in_a_row == replay.in_a_row, (skipped, steps)


def test_a_resumed_run_keeps_counting_the_bad_steps_in_a_row(tmp_path):
    # Steps 3 to 8 are bad and four in a row stop the run: at step 6, whether or not it was interrupted at step 4.
    def run(flow, **kwargs):
        return fit(flow, CorrelatedGaussian(), steps=12, batch_size=32, seed=0, max_bad_steps=4, **kwargs)

    with pytest.raises(TrainingError, match="at step 6 of 12"):
        run(flaky_flow(set(range(4, 10))))  # call 1 is the data-initialisation pass, so call s + 1 is step s

    def interrupt(step, history):
        if step == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(flaky_flow(set(range(4, 10))), checkpoint_dir=tmp_path, callback=interrupt)
    with pytest.raises(TrainingError, match=r"at step 6 of 12 \(4 non-finite"):
        run(flaky_flow({2, 3, 4, 5}), checkpoint_dir=tmp_path, resume=True)  # steps 5 to 8 of the resumed run



class _NaNGradient(torch.autograd.Function):
    """The identity forward; a NaN gradient backward."""

    @staticmethod
    def forward(ctx, value):
        return value.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float("nan")


class _BadGradientOnCall(Flaky):
    """A finite loss whose gradient is NaN on the forward calls numbered in ``bad_calls``."""

    def _forward(self, x, context):
        self.calls += 1
        z, logdet = ElementwiseAffine._forward(self, x, context)
        return z, _NaNGradient.apply(logdet) if self.calls in self.bad_calls else logdet


def test_a_finite_loss_with_a_nonfinite_gradient_is_skipped_too():
    # Call 1 is fit's initialising pass, so call 3 is step 2: its loss is an ordinary number, its gradient NaN.
    flow = Flow(_BadGradientOnCall(2, {3}), StandardNormal(2))
    seen = {}

    def watch(step, history):
        seen[step] = [p.detach().clone() for p in flow.parameters()]

    history = fit(flow, CorrelatedGaussian(), steps=4, batch_size=32, seed=0, callback=watch)
    assert history.skipped == [2]
    assert math.isfinite(history.losses[1]) and math.isnan(history.grad_norm[1])
    assert all(torch.equal(a, b) for a, b in zip(seen[1], seen[2])), "a step with a NaN gradient moved the model"
    assert all(torch.isfinite(p).all() for p in flow.parameters())


def test_only_bad_steps_in_a_row_count_toward_the_limit():
    # Steps 2, 4 and 6 are bad (calls 3, 5, 7; call 1 is the initialising pass), each followed by a good one:
    # never two in a row, so max_bad_steps=2 is never reached.
    flow = flaky_flow({3, 5, 7})
    history = fit(flow, CorrelatedGaussian(), steps=8, batch_size=32, seed=0, max_bad_steps=2)
    assert history.skipped == [2, 4, 6] and history.steps == 8


class _CountedBackward(torch.autograd.Function):
    """The identity, counting the backward passes that reach it in ``counter``."""

    @staticmethod
    def forward(ctx, value, counter):
        ctx.counter = counter
        return value.clone()

    @staticmethod
    def backward(ctx, grad):
        ctx.counter.append(1)
        return grad, None


class _CountedFlaky(Flaky):
    """Flaky, with every backward pass through its log-det counted in ``backwards``."""

    def __init__(self, features: int, bad_calls: set[int]) -> None:
        super().__init__(features, bad_calls)
        self.backwards: list[int] = []

    def _forward(self, x, context):
        z, logdet = super()._forward(x, context)
        return z, _CountedBackward.apply(logdet, self.backwards)


def test_a_nonfinite_loss_is_not_backpropagated():
    """A step whose loss is already NaN is skipped before its backward pass (which, for an adjoint CNF, would be a
    solve through NaNs): steps 2 and 3 (calls 3 and 4; call 1 is the initialising pass) run no backward."""
    flow = Flow(_CountedFlaky(2, {3, 4}), StandardNormal(2))
    history = fit(flow, CorrelatedGaussian(), steps=5, batch_size=32, seed=0)
    assert history.skipped == [2, 3]
    assert len(flow.transform.backwards) == 3


@pytest.mark.parametrize("budget, named", [({"steps": 3}, "step 1 of 3 "), ({"steps": None, "seconds": 60.0}, "step 1 ")])
@pytest.mark.parametrize("layer, what", [(Flaky, "the loss is nan"), (_BadGradientOnCall, "the gradient norm is nan")])
def test_the_error_names_what_was_not_finite_at_which_step_of_the_budget(budget, named, layer, what):
    """The message says whether the loss or (with a finite loss) the gradient norm was not finite, and the step out
    of the ``steps`` budget, if there is one; a budget in seconds only has no step count to name."""
    flow = Flow(layer(2, {2}), StandardNormal(2))  # call 2 is step 1
    with pytest.raises(TrainingError, match=rf"^fit: {what} at {re.escape(named)}\(1 non-finite step\(s\) in a row"):
        fit(flow, CorrelatedGaussian(), batch_size=16, seed=0, on_nonfinite="raise", **budget)


def test_max_bad_steps_is_a_count_of_any_integer_type() -> None:
    """np.int64(3) and torch.tensor(3) are 3 (both were refused as 'must be a positive int'); the guard keeps an int."""
    for count in (np.int64(3), torch.tensor(3)):
        guard = NonFiniteGuard("skip", max_bad_steps=count)
        assert guard.max_bad_steps == 3 and type(guard.max_bad_steps) is int
