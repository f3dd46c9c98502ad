"""Warm-started first steps: what the memory hints, that training solves use it, and that nothing else changes."""
from __future__ import annotations

import copy
import json
import pickle

import pytest
import torch

from ctflows.continuous import CNF, ConcatSquashMLP
from ctflows.continuous import adjoint as adjoint_module
from ctflows.continuous import cnf as cnf_module
from ctflows.continuous import solve as solve_module
from ctflows.continuous.dynamics import AugmentedDynamics
from ctflows.continuous.first_step import GROWTH, FirstStepMemory, first_step_states, load_first_step_states
from ctflows.data import get_density

F64 = torch.float64


def make_cnf(**kwargs) -> CNF:
    torch.manual_seed(0)
    field = ConcatSquashMLP(3, (16, 16), activation="tanh", init_scale=1.0)
    return CNF(field, **{"atol": 1e-6, "rtol": 1e-6, "learn_end_time": True, **kwargs}).to(F64).train()


def data(seed: int = 1) -> torch.Tensor:
    return torch.randn(8, 3, dtype=F64, generator=torch.Generator().manual_seed(seed))


def loss_of(cnf: CNF, x: torch.Tensor) -> torch.Tensor:
    z, logdet = cnf(x)
    return (0.5 * z.pow(2).sum(-1) - logdet).mean()


def solver_calls(monkeypatch) -> list[tuple[torch.Tensor, dict]]:
    """Spy on the ``odeint`` calls of ctflows' solves (plain and adjoint): each one's time grid and options, in order."""
    calls: list[tuple[torch.Tensor, dict]] = []
    for module in (adjoint_module, solve_module):
        real = module.odeint
        monkeypatch.setattr(module, "odeint", lambda f, y0, t, real=real, **k: (calls.append((t, k["options"])), real(f, y0, t, **k))[1])
    return calls


def test_the_memory_hints_the_grown_first_accepted_step_within_the_span():
    memory = FirstStepMemory()
    assert memory.hint("k", 2.0) is None  # nothing recorded: torchdiffeq's heuristic decides
    record = memory.recorder("k")
    record(torch.tensor(0.0), None, torch.tensor(0.5))
    record(torch.tensor(0.5), None, torch.tensor(1.0))  # a later accepted step of the same run is ignored
    assert memory.hint("k", 2.0) == pytest.approx(GROWTH * 0.5)
    assert memory.hint("k", 0.3) == 0.3  # never more than the whole span
    assert memory.hint("other", 2.0) is None
    restored = FirstStepMemory()
    restored.load_state_dict(memory.state_dict())
    assert restored.steps == memory.steps


@pytest.mark.parametrize("inverse", [False, True])
@pytest.mark.parametrize("adjoint", [True, "torchdiffeq", False])
def test_training_solves_start_at_the_hinted_step(monkeypatch, adjoint, inverse):
    attempted: list[tuple[bool, float]] = []
    on_step, on_adjoint_step = AugmentedDynamics._on_step, AugmentedDynamics._on_adjoint_step
    monkeypatch.setattr(AugmentedDynamics, "_on_step", lambda self, t0, y0, dt: (attempted.append((False, float(dt.detach()))), on_step(self, t0, y0, dt)))
    monkeypatch.setattr(
        AugmentedDynamics, "_on_adjoint_step", lambda self, t0, y0, dt: (attempted.append((True, float(dt.detach()))), on_adjoint_step(self, t0, y0, dt))
    )
    cnf = make_cnf(adjoint=adjoint)
    call = cnf.inverse if inverse else cnf
    call(data())[0].pow(2).sum().backward()
    recorded = dict(cnf.first_steps.steps)
    assert {kind[:2] for kind in recorded} == {(phase, inverse) for phase in (("solve",) if adjoint is False else ("solve", "adjoint"))}
    span = float(cnf.end_time.detach())
    hints = {kind[0]: min(GROWTH * step, span) for kind, step in recorded.items()}
    attempted.clear()
    call(data(seed=2))[0].pow(2).sum().backward()
    first_forward = next(dt for backward, dt in attempted if not backward)
    assert first_forward == pytest.approx(hints["solve"], rel=1e-12)
    if adjoint is not False:
        first_backward = next(dt for backward, dt in attempted if backward)
        assert first_backward == pytest.approx(hints["adjoint"], rel=1e-12)


def test_warm_started_solves_keep_their_accuracy_and_their_gradients():
    """After a call has primed the memory, output, log-det and adjoint gradients still match a tight solve."""
    x = data()
    cnfs = {}
    for name, kwargs in {"adjoint": dict(adjoint=True), "direct": dict(adjoint=False)}.items():
        cnf = make_cnf(atol=1e-8, rtol=1e-8, **kwargs)
        loss_of(cnf, data(seed=5)).backward()  # primes the memory
        assert cnf.first_steps.steps
        cnf.zero_grad()
        cnfs[name] = cnf
    reference = make_cnf(atol=1e-12, rtol=1e-12, warm_start_step=False, adjoint=False)
    z_ref, logdet_ref = reference(x)
    for cnf in cnfs.values():
        z, logdet = cnf(x)
        torch.testing.assert_close(z, z_ref, atol=1e-6, rtol=0)
        torch.testing.assert_close(logdet, logdet_ref, atol=1e-6, rtol=0)
        loss_of(cnf, x).backward()
    for a, b in zip(cnfs["adjoint"].parameters(), cnfs["direct"].parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-7)


def test_evaluation_does_not_depend_on_earlier_calls():
    cnf = make_cnf()
    fresh = copy.deepcopy(cnf)
    for seed in range(3):
        loss_of(cnf, data(seed)).backward()
    assert cnf.first_steps.steps
    cnf.eval(), fresh.eval()
    x = data(seed=9)
    for a, b in zip(cnf(x), fresh(x)):
        assert torch.equal(a, b)
    assert torch.equal(cnf.inverse(x)[0], fresh.inverse(x)[0])


@pytest.mark.filterwarnings("error")  # e.g. torchdiffeq's about a callback_accept_step that rk4 never calls
@pytest.mark.parametrize("kwargs", [dict(warm_start_step=False), dict(method="rk4", step_size=0.1)])
def test_no_hint_when_off_or_for_fixed_steps(monkeypatch, kwargs):
    handed: list[tuple] = []
    integrate = cnf_module.integrate
    monkeypatch.setattr(cnf_module, "integrate", lambda *a, **k: (handed.append(k["first_steps"]), integrate(*a, **k))[1])
    cnf = make_cnf(**kwargs)
    for _ in range(2):
        loss_of(cnf, data()).backward()
    assert handed == [(None, None)] * 2
    assert cnf.first_steps.steps == {}


@pytest.mark.parametrize("change", ["dtype", "tolerances", "method"])
def test_a_hint_is_only_reused_by_solves_of_the_same_setting(monkeypatch, change):
    """The memory is keyed by dtype, tolerances and method: after a change both solves start cold, then warm."""
    cnf, x = make_cnf(adjoint=True), data()
    loss_of(cnf, x).backward()  # primes the memory for float64, atol=rtol=1e-6 and dopri5
    if change == "dtype":
        cnf, x = cnf.float(), x.float()
    elif change == "tolerances":
        cnf.atol = cnf.rtol = 1e-7
    else:
        cnf.method = "bosh3"
    calls = solver_calls(monkeypatch)
    for _ in range(2):
        loss_of(cnf, x).backward()
    # forward and backward solve of the first call, then of the second
    assert ["first_step" in options for _, options in calls] == [False, False, True, True]


def test_a_hint_longer_than_the_jittered_span_is_cut_to_it(monkeypatch):
    """With end-time jitter each call's span differs from T: the first step tried, forward and backward, is that span."""
    cnf = make_cnf(adjoint=True, end_time_jitter=0.5)
    loss_of(cnf, data()).backward()
    cnf.first_steps.steps = dict.fromkeys(cnf.first_steps.steps, 100.0)  # longer than any span
    calls = solver_calls(monkeypatch)
    loss_of(cnf, data(seed=2)).backward()
    assert len(calls) == 2
    for times, options in calls:
        span = float((times[1] - times[0]).abs())
        assert span != pytest.approx(float(cnf.end_time.detach()))  # jittered (else this checks nothing)
        assert options["first_step"] == pytest.approx(span, rel=1e-12)


def test_warm_starts_save_evaluations_in_a_short_training_run():
    """The same 25 Adam steps on eight Gaussians, with and without warm starts: fewer evaluations with them."""
    batches = [get_density("eight_gaussians").sample(256, generator=torch.Generator().manual_seed(i)) for i in range(25)]
    totals = {}
    for warm in (True, False):
        torch.manual_seed(0)
        cnf = CNF(ConcatSquashMLP(2, (32, 32), activation="tanh"), end_time=0.5, learn_end_time=True, warm_start_step=warm)
        optimizer = torch.optim.Adam(cnf.parameters(), lr=5e-3)
        totals[warm] = 0
        for x in batches:
            z, logdet = cnf(x)
            loss = (0.5 * z.pow(2).sum(-1) - logdet).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            totals[warm] += cnf.stats["nfe_forward"] + cnf.stats["nfe_backward"]
    # Each solve skips the heuristic's extra evaluation, and a start it had guessed too long.
    assert totals[True] < totals[False] - 25, totals


def test_a_cnf_pickled_before_these_settings_unpickles_with_their_defaults():
    cnf = make_cnf()
    for name in ("first_steps", "warm_start_step", "end_time_jitter"):
        del cnf.__dict__[name]  # as in a CNF pickled by an earlier version
    restored = pickle.loads(pickle.dumps(cnf))
    assert restored.warm_start_step is True and restored.end_time_jitter == 0.0
    loss_of(restored, data()).backward()
    assert restored.first_steps.steps


def test_the_hint_is_the_documented_one_point_two_times_the_first_accepted_step():
    # CNF's docstring promises 1.2x the first step the previous solve of its kind accepted.
    memory = FirstStepMemory()
    memory.recorder("k")(torch.tensor(0.0), None, torch.tensor(0.25))
    assert memory.hint("k", 10.0) == pytest.approx(0.3, rel=1e-12)


def test_a_memory_read_back_from_json_gives_the_same_hints():
    """Saved steps may come back with their tuple kinds turned into lists (JSON, YAML): the hints stay the same."""
    cnf = make_cnf()
    loss_of(cnf, data()).backward()
    original = cnf.first_steps
    restored = FirstStepMemory()
    restored.load_state_dict(json.loads(json.dumps(original.state_dict())))
    assert restored.steps == original.steps
    for kind in original.steps:
        assert restored.hint(kind, 1.0) == original.hint(kind, 1.0) is not None


def test_loading_states_empties_the_memories_they_do_not_name():
    model = torch.nn.ModuleDict({"a": make_cnf(), "b": make_cnf()})
    for name in ("a", "b"):
        loss_of(model[name], data()).backward()
    saved = first_step_states(model)
    assert set(saved) == {"a", "b"} and all(saved.values())
    load_first_step_states(model, {"a": saved["a"]})
    assert model["a"].first_steps.steps == dict(saved["a"])
    assert model["b"].first_steps.steps == {}  # "start with an empty memory", not the steps of before
