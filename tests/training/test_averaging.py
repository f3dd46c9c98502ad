"""The parameter average: its arithmetic, and how ``fit(ema_decay=...)`` evaluates, saves, returns and resumes it."""
from __future__ import annotations

import importlib
import signal
from contextlib import contextmanager

import numpy as np
import pytest
import torch

from ctflows.errors import CheckpointError, ConfigurationError
from ctflows.training import fit, load
from ctflows.training import averaging
from ctflows.training.averaging import ParameterAverage, _exchange_values, check_decay
from ctflows.training.training_state import read_state
from training.fakes import CorrelatedGaussian, affine_flow
from training.same_parameters import assert_same_parameters


def bias_corrected(iterates: list[list[torch.Tensor]], decay: float) -> list[torch.Tensor]:
    """Σ_k β^(n−k) (1 − β) θ_k / (1 − βⁿ), written out over the iterates θ_1 … θ_n."""
    n = len(iterates)
    weights = [decay ** (n - k) * (1 - decay) / (1 - decay**n) for k in range(1, n + 1)]
    return [sum(w * values[i] for w, values in zip(weights, iterates)) for i in range(len(iterates[0]))]


def test_average_is_the_bias_corrected_weighted_mean_and_swaps_back():
    param = torch.nn.Parameter(torch.tensor([1.0, -2.0]))  # the initial value gets no weight
    average = ParameterAverage([param], decay=0.75)
    values = [torch.tensor(v) for v in ([3.0, 0.0], [-1.0, 5.0], [0.5, 0.5])]
    for value in values:
        with torch.no_grad():
            param.copy_(value)
        average.update()
    expected = bias_corrected([[v] for v in values], 0.75)[0]
    torch.testing.assert_close(average.averaged[0], expected)
    with average.applied():
        torch.testing.assert_close(param.detach(), expected)
    assert torch.equal(param.detach(), torch.tensor([0.5, 0.5]))  # its own value is back after the block


class InterruptingParams(list):
    """A parameter list that raises ``signal_or_error`` (a SIGINT, or an exception) right after handing out its
    ``at``-th item, counted over all iterations: how an interrupt lands in the middle of an exchange."""

    def __init__(self, params, at: int, signal_or_error) -> None:
        super().__init__(params)
        self.at, self.signal_or_error, self.handed = at, signal_or_error, 0

    def __iter__(self):
        for item in super().__iter__():
            yield item
            self.handed += 1
            if self.handed == self.at:
                if isinstance(self.signal_or_error, BaseException):
                    raise self.signal_or_error
                signal.raise_signal(self.signal_or_error)


def averaged_setup(at: int, signal_or_error=signal.SIGINT) -> tuple[list, ParameterAverage]:
    """Three parameters with θ = i + 10 and θ̄ = i; an exchange hands out their items once, pair by pair (1 to 3;
    an exchange back 4 to 6)."""
    params = [torch.nn.Parameter(torch.full((2,), float(i))) for i in range(3)]
    average = ParameterAverage(params, decay=0.5)
    with torch.no_grad():
        for param in params:
            param.add_(10.0)
    average.params = InterruptingParams(params, at, signal_or_error)
    return params, average


def values(tensors) -> list[float]:
    return [float(t.detach()[0]) for t in tensors]


def test_a_ctrl_c_during_a_swap_is_raised_once_the_swap_is_whole(python_sigint_handler):
    params, average = averaged_setup(at=1)  # after the first pair was exchanged
    with pytest.raises(KeyboardInterrupt):
        average.swap()
    assert values(params) == [0.0, 1.0, 2.0] and values(average.averaged) == [10.0, 11.0, 12.0] and average.holding
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def swapped_in_a_block(average: ParameterAverage) -> None:
    """``applied()`` entered, for a body that must not run when the exchange into it fails."""
    with average.applied():
        pytest.fail("the block ran although the average could not be put in place")


@pytest.mark.parametrize("through", [ParameterAverage.swap, swapped_in_a_block], ids=["swap", "applied"])
@pytest.mark.parametrize("where", ["parameters", "averages"])
def test_an_error_during_a_swap_undoes_it(where, through):
    # after two of the three pairs are exchanged, the next item of either list fails; the two must be exchanged
    # back, and applied() must then leave them so, not "swap back" an exchange that never happened
    params, average = averaged_setup(at=2 if where == "parameters" else 0)
    if where == "averages":
        average.averaged = InterruptingParams(average.averaged, 2, RuntimeError("out of memory"))
    else:
        average.params.signal_or_error = RuntimeError("out of memory")
    with pytest.raises(RuntimeError, match="out of memory"):
        through(average)
    assert values(params) == [10.0, 11.0, 12.0] and values(average.averaged) == [0.0, 1.0, 2.0]
    assert not average.holding


@pytest.mark.parametrize("through", [ParameterAverage.swap, swapped_in_a_block], ids=["swap", "applied"])
def test_a_pair_that_could_not_be_exchanged_is_not_exchanged_by_the_undo(monkeypatch, through):
    """The second pair's exchange fails and, as ``_exchange_values`` promises, leaves that pair as it was (its copy
    could not be made, say): the undo exchanges back the first pair only, not the second, which was never swapped."""
    params, average = averaged_setup(at=0)
    real, calls = averaging._exchange_values, []

    def fails_on_the_second_pair(a: torch.Tensor, b: torch.Tensor) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("out of memory")
        real(a, b)

    monkeypatch.setattr(averaging, "_exchange_values", fails_on_the_second_pair)
    with pytest.raises(RuntimeError, match="out of memory"):
        through(average)
    assert values(params) == [10.0, 11.0, 12.0] and values(average.averaged) == [0.0, 1.0, 2.0]
    assert not average.holding


def test_a_pair_whose_exchange_fails_halfway_keeps_both_values():
    """The second copy of a pair failing (here: an expanded tensor, whose elements share memory, cannot be written)
    puts the first tensor's value back, so neither is left holding the other's."""
    a, b = torch.tensor([1.0, 2.0]), torch.zeros(1).expand(2)
    with pytest.raises(RuntimeError, match="refers to a single memory location"):
        _exchange_values(a, b)
    assert a.tolist() == [1.0, 2.0] and b.tolist() == [0.0, 0.0]


@pytest.mark.parametrize("at", [2, 5], ids=["entering", "leaving"])  # the first exchange, or the one back
def test_applied_puts_the_own_values_back_after_a_ctrl_c(python_sigint_handler, at):
    params, average = averaged_setup(at=at)
    body = []
    with pytest.raises(KeyboardInterrupt):
        with average.applied():
            body.append(values(params))
    # entering: held back until θ̄ was all in, raised before the block, undone; leaving: after the block
    assert body == ([] if at == 2 else [[0.0, 1.0, 2.0]])
    assert values(params) == [10.0, 11.0, 12.0] and values(average.averaged) == [0.0, 1.0, 2.0]
    assert not average.holding


def test_applied_blocks_nest_and_the_inner_one_holds_the_average_too():
    """An inner ``applied()`` (an evaluation inside a block already holding θ̄) sees θ̄, not the own values, and
    leaves θ̄ in place for the rest of the outer block; the outer one still puts θ back at its end."""
    params, average = averaged_setup(at=0)
    with average.applied():
        with average.applied():
            assert values(params) == [0.0, 1.0, 2.0]
        assert values(params) == [0.0, 1.0, 2.0] and average.holding
    assert values(params) == [10.0, 11.0, 12.0] and values(average.averaged) == [0.0, 1.0, 2.0]
    assert not average.holding


def test_hold_own_puts_the_own_values_back_only_when_the_average_is_in():
    params, average = averaged_setup(at=0)
    average.hold_own()
    assert values(params) == [10.0, 11.0, 12.0]
    average.swap()
    average.hold_own()
    assert values(params) == [10.0, 11.0, 12.0] and not average.holding


@pytest.mark.parametrize("saving", [True, False], ids=["checkpointed", "no checkpoint"])
def test_a_ctrl_c_that_leaves_the_average_in_place_is_not_saved_swapped(tmp_path, monkeypatch, saving):
    # The one window applied() cannot close: a Ctrl-C after the block, before the exchange back starts. fit's
    # exit path must then save the parameters' own values as the state, and their average as model.pt.
    fit_module = importlib.import_module("ctflows.training.fit")
    real, seen = fit_module.holding_average, {}

    @contextmanager
    def interrupted_evaluation(average):
        if seen:  # the saves: as usual
            with real(average):
                yield
            return
        seen["own"] = [p.detach().clone() for p in average.params]
        average.swap()
        seen["average"] = [p.detach().clone() for p in average.params]
        yield
        raise KeyboardInterrupt  # with the average still in place

    monkeypatch.setattr(fit_module, "holding_average", interrupted_evaluation)
    flow = affine_flow()
    with pytest.raises(KeyboardInterrupt):
        fit(flow, CorrelatedGaussian(), steps=10, batch_size=32, seed=3, lr=1e-2, ema_decay=0.8,
            eval_data=CorrelatedGaussian(), eval_every=3, eval_samples=64,
            **({"checkpoint_dir": tmp_path, "checkpoint_every": 1000} if saving else {}))
    assert not all(torch.equal(a, b) for a, b in zip(seen["own"], seen["average"]))
    for param, own in zip([p for p in flow.parameters() if p.requires_grad], seen["own"]):
        assert torch.equal(param.detach(), own)  # the flow is left holding its own values
    if not saving:
        return
    state = read_state(tmp_path)
    trainable = [name for name, p in flow.named_parameters() if p.requires_grad]
    saved_model = dict(load(tmp_path / "model.pt").named_parameters())
    for name, own, average, saved_average in zip(trainable, seen["own"], seen["average"], state["average"]["averaged"]):
        assert torch.equal(state["model"][name], own) and torch.equal(saved_average, average)
        assert torch.equal(saved_model[name], average)


class NeverSampled(CorrelatedGaussian):
    """A density that fails the test if fit draws from it: for settings that must be refused before any data is
    drawn or the flow is run (a first forward pass can be an ODE solve)."""

    def sample(self, *args, **kwargs):
        pytest.fail("fit drew data before refusing its settings")


@pytest.mark.parametrize("decay", [0, 1, -0.5, 1.5, float("nan"), True, "0.9", np.bool_(True), torch.tensor([0.5, 0.9])])
def test_decay_outside_the_open_unit_interval_is_refused(decay):
    with pytest.raises(ConfigurationError, match="^fit: ema_decay must be a number strictly between 0 and 1"):
        fit(affine_flow(), NeverSampled(), steps=2, batch_size=8, ema_decay=decay)


@pytest.mark.parametrize("decay", [0.75, np.float32(0.75), np.float64(0.75), torch.tensor(0.75)])
def test_a_numpy_or_torch_decay_is_the_python_float_it_equals(decay):
    """As fit's learning rate and weights, a NumPy or 0-d torch decay is taken as the Python float it equals."""
    assert type(check_decay(decay)) is float and check_decay(decay) == 0.75
    assert ParameterAverage([torch.zeros(2)], decay).decay == 0.75


def test_fit_returns_and_saves_the_average_of_its_iterates(tmp_path):
    torch.manual_seed(0)
    flow, data = affine_flow(), CorrelatedGaussian()
    iterates = []

    def record(step, history):
        iterates.append([p.detach().clone() for p in flow.parameters()])

    decay = 0.8
    fit(flow, data, steps=12, batch_size=32, seed=3, lr=1e-2, ema_decay=decay, callback=record, checkpoint_dir=tmp_path)
    for param, want in zip(flow.parameters(), bias_corrected(iterates, decay)):
        torch.testing.assert_close(param.detach(), want)
    assert not all(torch.equal(p.detach(), v) for p, v in zip(flow.parameters(), iterates[-1]))  # not the last iterate
    assert_same_parameters(load(tmp_path / "model.pt"), flow)


def test_every_evaluation_is_of_the_average_so_far(monkeypatch):
    fit_module = importlib.import_module("ctflows.training.fit")  # the package's ``fit`` is the function
    seen, iterates = [], []
    monkeypatch.setattr(fit_module, "evaluate", lambda flow, *a, **k: seen.append(
        [p.detach().clone() for p in flow.parameters()]) or {"nll": 0.0})
    flow = affine_flow()
    fit(flow, CorrelatedGaussian(), steps=6, batch_size=16, seed=0, ema_decay=0.5, eval_data=CorrelatedGaussian(),
        eval_every=3, callback=lambda step, h: iterates.append([p.detach().clone() for p in flow.parameters()]))
    assert len(seen) == 2  # after steps 3 and 6
    for evaluated, step in zip(seen, (3, 6)):
        for got, want in zip(evaluated, bias_corrected(iterates[:step], 0.5)):
            torch.testing.assert_close(got, want)


class BlowsUpOnce(torch.optim.AdamW):
    """AdamW whose 4th step sets a parameter to inf: a divergent update made from a finite loss and gradient."""

    def step(self, closure=None):
        result = super().step(closure)
        self.calls = getattr(self, "calls", 0) + 1
        if self.calls == 4:
            with torch.no_grad():
                self.param_groups[0]["params"][0].fill_(float("inf"))
        return result


@pytest.mark.parametrize("policy", ["skip", "restore"])
def test_a_divergent_step_does_not_poison_the_average_under_restore(policy):
    flow = affine_flow()
    history = fit(flow, CorrelatedGaussian(), steps=12, batch_size=32, seed=0, lr=1e-2, optimizer=BlowsUpOnce,
                  on_nonfinite=policy, ema_decay=0.9, max_bad_steps=20)
    assert history.skipped  # the step after the blow-up had a non-finite loss
    finite = all(bool(torch.isfinite(p).all()) for p in flow.parameters())
    # "skip" keeps the inf parameter (and so its average); "restore" rolls back the parameters and the average.
    assert finite == (policy == "restore")


def test_skipped_steps_leave_the_average_alone(monkeypatch):
    fit_module = importlib.import_module("ctflows.training.fit")
    real_forward = fit_module.TrainingLoss.forward
    flow, steps_seen, iterates = affine_flow(), [], []

    def nan_at_step_3(self, x, context):
        loss, nll, terms = real_forward(self, x, context)
        return (loss * float("nan"), nll, terms) if len(steps_seen) == 2 else (loss, nll, terms)

    def record(step, history):
        steps_seen.append(step)
        if step not in history.skipped:
            iterates.append([p.detach().clone() for p in flow.parameters()])

    monkeypatch.setattr(fit_module.TrainingLoss, "forward", nan_at_step_3)
    history = fit(flow, CorrelatedGaussian(), steps=6, batch_size=16, seed=0, ema_decay=0.7, callback=record)
    assert history.skipped == [3] and len(iterates) == 5
    for got, want in zip(flow.parameters(), bias_corrected(iterates, 0.7)):
        torch.testing.assert_close(got.detach(), want)


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
    assert_same_parameters(whole, resumed)


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
        average.load_state_dict({"decay": 0.9, "updates": 3, "averaged": [torch.zeros(4)]})
    with pytest.raises(CheckpointError, match="earlier ctflows"):  # no update count: nothing is half loaded
        average.load_state_dict({"decay": 0.9, "averaged": [torch.ones(3)]})
    assert torch.equal(average.averaged[0], torch.zeros(3))


def test_restore_brings_the_average_back_to_the_checkpoint_and_it_goes_on_from_there(tmp_path):
    # Checkpoints at steps 3, 6, 9; step 4's update blows a parameter up, step 5's loss is not finite and rolls
    # back to step 3's state, average included. The average then holds steps 1-3 and 6-12, not 4, and not only
    # 6-12 (which an average reset to its start at a restore would give).
    flow, iterates = affine_flow(), {}

    def record(step, history):
        iterates[step] = [p.detach().clone() for p in flow.parameters()]

    history = fit(flow, CorrelatedGaussian(), steps=12, batch_size=32, seed=0, lr=1e-2, optimizer=BlowsUpOnce,
                  on_nonfinite="restore", ema_decay=0.9, max_bad_steps=20, checkpoint_dir=tmp_path, checkpoint_every=3,
                  callback=record)
    assert history.skipped == [5]
    kept = [iterates[step] for step in (1, 2, 3, 6, 7, 8, 9, 10, 11, 12)]
    for got, want in zip(flow.parameters(), bias_corrected(kept, 0.9)):
        torch.testing.assert_close(got.detach(), want)
