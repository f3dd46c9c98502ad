"""A solve that cannot proceed raises SolverError with the layer, tolerances, work so far and remedies."""
from __future__ import annotations

import traceback
import weakref

import pytest
import torch
from torch import Tensor
from torchdiffeq import odeint

from ctflows.continuous import CNF, TimeMLP, VelocityField
from ctflows.continuous.dynamics import AugmentedDynamics
from ctflows.continuous.failure import SolveSettings, solver_error, solver_failure_reason
from ctflows.errors import ConfigurationError, SolverError


class Stiff(VelocityField):
    """dx/dt = -k x with large k: explicit solvers need ~3/k-sized steps."""

    features = 2

    def __init__(self, k: float = 1e5) -> None:
        super().__init__()
        self.k = k
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.poisoned = False
        self.calls = 0

    def forward(self, t: Tensor, x: Tensor, context: Tensor | None = None) -> Tensor:
        self.calls += 1
        v = -self.k * self.scale * x
        return v * float("nan") if self.poisoned else v


class Exploding(VelocityField):
    """dx/dt = x²: blows up at t = 1/x(0)."""

    features = 2

    def forward(self, t: Tensor, x: Tensor, context: Tensor | None = None) -> Tensor:
        return x * x


class Broken(VelocityField):
    features = 2

    def forward(self, t: Tensor, x: Tensor, context: Tensor | None = None) -> Tensor:
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")


def check_message(error: SolverError, *must_contain: str) -> None:
    text = str(error)
    for part in ("atol=", "rtol=", "function evaluations so far", "regularization", "fixed-step", "looser tolerances", *must_contain):
        assert part in text, f"{part!r} missing from: {text}"


def test_too_many_steps_gives_a_helpful_solver_error():
    cnf = CNF(Stiff(), max_num_steps=20, atol=1e-7, rtol=1e-7, name="block 3").double()
    with pytest.raises(SolverError) as info:
        cnf(torch.ones(4, 2, dtype=torch.float64))
    check_message(info.value, "block 3", "forward", "max_num_steps=20", "atol=1e-07")
    assert cnf.stats["nfe_forward"] > 0
    assert isinstance(info.value, RuntimeError)  # generic handlers still catch it


def test_blow_up_gives_a_solver_error_in_the_inverse_too():
    cnf = CNF(Exploding(), end_time=1.0, max_num_steps=100_000)
    with pytest.raises(SolverError) as info:
        cnf(torch.full((3, 2), 2.0))
    check_message(info.value, "CNF(features=2, field=Exploding)")
    with pytest.raises(SolverError) as info:
        cnf.inverse(torch.full((3, 2), -2.0))
    check_message(info.value, "inverse")


@pytest.mark.parametrize("adjoint", [True, "torchdiffeq"])
def test_failure_in_the_adjoint_backward_pass_is_a_solver_error(adjoint):
    field = Stiff(k=1.0)
    cnf = CNF(field, adjoint=adjoint)
    z, logdet = cnf(torch.ones(4, 2))
    field.poisoned = True
    with pytest.raises(SolverError) as info:
        (z.sum() + logdet.sum()).backward()
    check_message(info.value, "adjoint")


@pytest.mark.parametrize("adjoint", [True, "torchdiffeq"])
def test_a_backward_solve_that_runs_out_of_steps_is_a_solver_error(adjoint):
    # torchdiffeq's own step limit and underflow assertion would fire inside loss.backward(), where the CNF
    # cannot catch them: the adjoint's step callback must get there first, with ctflows' message.
    field = Stiff(k=1.0)
    cnf = CNF(field, adjoint=adjoint, max_num_steps=30, atol=1e-7, rtol=1e-7)
    z, logdet = cnf(torch.ones(4, 2))
    field.k = 1e5  # stiff only in the backward solve
    with pytest.raises(SolverError) as info:
        (z.sum() + logdet.sum()).backward()
    check_message(info.value, "adjoint", "more than max_num_steps=30")


@pytest.mark.parametrize("adjoint", [True, "torchdiffeq"])
def test_torchdiffeqs_own_assertion_in_the_backward_solve_names_the_adjoint_solve(adjoint, monkeypatch):
    """Should torchdiffeq's assert fire before ctflows' step check (here switched off), it still becomes a SolverError."""
    monkeypatch.setattr(AugmentedDynamics, "_on_adjoint_step", lambda self, t0, y0, dt: None)
    field = Stiff(k=1.0)
    cnf = CNF(field, adjoint=adjoint)
    z, logdet = cnf(torch.ones(4, 2))
    field.poisoned = True
    with pytest.raises(SolverError) as info:
        (z.sum() + logdet.sum()).backward()
    check_message(info.value, "adjoint (backward pass of the forward")
    assert isinstance(info.value.__cause__, AssertionError)  # torchdiffeq's own error stays attached, for its traceback


class RootOfTime(VelocityField):
    """dx/dt = -x + sqrt(b t): finite on [0, T], but its derivative in b, t / (2 sqrt(b t)), is 0/0 at t = 0."""

    features = 2

    def __init__(self) -> None:
        super().__init__()
        self.b = torch.nn.Parameter(torch.ones(()))

    def forward(self, t: Tensor, x: Tensor, context: Tensor | None = None) -> Tensor:
        return -x + (self.b * t).sqrt()


def test_a_parameter_adjoint_that_turns_nan_in_the_last_step_is_a_solver_error():
    """rk4's last stage lands on t = 0 after the last step-start check: the NaN gradient raises, not returns."""
    cnf = CNF(RootOfTime(), method="rk4", step_size=0.1)
    z, logdet = cnf(torch.ones(4, 2))
    with pytest.raises(SolverError) as info:
        (z.sum() + logdet.sum()).backward()
    check_message(info.value, "adjoint", "NaN or Inf")
    assert cnf.field.b.grad is None


@pytest.mark.parametrize("adjoint", [True, "torchdiffeq"])
def test_a_backward_failure_after_the_next_call_counts_every_evaluation_of_its_own_call(adjoint):
    field = Stiff(k=1.0)
    cnf = CNF(field, adjoint=adjoint)
    z, logdet = cnf(torch.ones(4, 2))
    forward, first_stats = cnf.stats["nfe_forward"], weakref.ref(cnf.stats)
    cnf(torch.ones(3, 2))  # replaces the first call's stats
    assert first_stats() is None, "the first call's stats should be gone, or this test checks nothing"
    field.poisoned, calls = True, field.calls
    with pytest.raises(SolverError) as info:
        (z.sum() + logdet.sum()).backward()
    backward = field.calls - calls
    assert backward > 0
    assert f"function evaluations so far: {forward} forward, {backward} backward" in str(info.value)


def test_bugs_in_the_field_are_not_disguised_as_solver_failures():
    with pytest.raises(RuntimeError) as info:
        CNF(Broken())(torch.ones(2, 2))
    assert not isinstance(info.value, SolverError)


class Asserting(VelocityField):
    features = 2

    def forward(self, t: Tensor, x: Tensor, context: Tensor | None = None) -> Tensor:
        assert x.shape[1] == 3, "my field expects 3 columns"
        return x


def test_an_assertion_in_the_users_field_stays_theirs():
    with pytest.raises(AssertionError, match="my field expects 3 columns") as info:
        CNF(Asserting())(torch.ones(2, 2))
    assert not isinstance(info.value, SolverError)


@pytest.mark.parametrize("method", ["rk4", "euler"])
@pytest.mark.parametrize("adjoint", [True, False])
def test_fixed_step_solvers_do_not_return_nan_silently(method, adjoint):
    field = Stiff(k=1.0)
    field.poisoned = True
    cnf = CNF(field, method=method, step_size=0.1, adjoint=adjoint)
    with pytest.raises(SolverError) as info:
        cnf(torch.ones(4, 2))
    check_message(info.value, "NaN or Inf", "step_size=0.1")
    with torch.no_grad(), pytest.raises(SolverError):
        cnf.eval().inverse(torch.ones(4, 2))


class KinkAtZero(VelocityField):
    """dx/dt = -sqrt(x²) = -|x|: finite everywhere, but autograd's derivative at x = 0 is 0/0, so from x = 0 the
    state stays at 0 (finite) while the divergence, and with it the log-det, is NaN."""

    features = 2

    def forward(self, t: Tensor, x: Tensor, context: Tensor | None = None) -> Tensor:
        return -x.square().sqrt()


@pytest.mark.parametrize("adjoint", [True, False])
def test_a_non_finite_log_det_is_a_solver_error_even_where_the_state_stays_finite(adjoint):
    """A fixed grid checks nothing, so the final check must read the log-det too, not only the state."""
    cnf = CNF(KinkAtZero(), method="rk4", step_size=0.1, adjoint=adjoint)
    with pytest.raises(SolverError) as info:
        cnf(torch.zeros(3, 2))
    check_message(info.value, "NaN or Inf", "step_size=0.1")


def test_nan_under_an_adaptive_solver_is_named_as_a_possible_cause():
    field = Stiff(k=1.0)
    field.poisoned = True
    with pytest.raises(SolverError) as info:
        CNF(field)(torch.ones(4, 2))
    assert "NaN" in str(info.value) or "non-finite" in str(info.value), str(info.value)


@pytest.mark.parametrize("adjoint", [True, "torchdiffeq"])
def test_each_backward_solve_gets_its_own_step_budget(adjoint):
    # A second backward through the same output (retain_graph, or a score taken before the loss) runs a new
    # adjoint solve: its steps must not add to the first one's, or a healthy solve fails max_num_steps.
    torch.manual_seed(0)
    cnf = CNF(TimeMLP(2, (16,), init_scale=2.0), warm_start_step=False, max_num_steps=5, adjoint=adjoint)
    z, logdet = cnf(torch.randn(8, 2))
    logdet.sum().backward(retain_graph=True)
    once = [p.grad.clone() for p in cnf.field.parameters()]
    logdet.sum().backward()
    for first, twice in zip(once, (p.grad for p in cnf.field.parameters())):
        torch.testing.assert_close(twice, 2 * first)


def test_an_assertion_only_counts_as_a_solver_failure_when_torchdiffeq_raised_it():
    # torchdiffeq's own assert, several frames below the call that catches it (a time grid out of order).
    with pytest.raises(AssertionError) as theirs:
        odeint(lambda t, y: -y, torch.ones(2), torch.tensor([0.0, 1.0, 0.5]))
    assert solver_failure_reason(theirs.value) == str(theirs.value)
    # The same assertion never raised has no traceback, so no torchdiffeq frame: not a solver failure (and no IndexError).
    assert solver_failure_reason(AssertionError(str(theirs.value))) is None

    def field(t, y):
        assert y.shape == (3,), "the user's own check"
        return -y

    with pytest.raises(AssertionError) as ours:
        odeint(field, torch.ones(2), torch.tensor([0.0, 1.0]))
    assert solver_failure_reason(ours.value) is None

    def says_step_size(t, y):  # a RuntimeError of the user's, whatever it says, is theirs
        raise RuntimeError("step size too small in my own code")

    with pytest.raises(RuntimeError) as runtime:
        odeint(says_step_size, torch.ones(2), torch.tensor([0.0, 1.0]))
    assert solver_failure_reason(runtime.value) is None

    # A RuntimeError raised in torchdiffeq's own code (here its first-step heuristic, on a field returning the
    # wrong size) is not the solver giving up either: only its reshape of a short solution says that.
    with pytest.raises(RuntimeError) as mismatch:
        odeint(lambda t, y: torch.ones(3), torch.ones(2), torch.tensor([0.0, 1.0]))
    assert "torchdiffeq" in traceback.extract_tb(mismatch.value.__traceback__)[-1].filename  # else this checks nothing
    assert solver_failure_reason(mismatch.value) is None


def test_a_solver_error_quotes_the_first_line_of_the_reason_and_at_most_200_characters():
    settings = SolveSettings("block 1", "dopri5", 1e-5, 1e-6, 50)
    tensor_dump = "non-finite values in state `y`: tensor([[nan, nan],\n        [nan, nan]])"
    text = str(solver_error(settings, "forward", tensor_dump, 7, 0))
    assert "(non-finite values in state `y`: tensor([[nan, nan],)" in text and "        [nan" not in text
    assert "atol=1e-05, rtol=1e-06, max_num_steps=50" in text and "7 forward, 0 backward" in text
    text = str(solver_error(settings, "forward", "x" * 500, 0, 0))
    assert "(" + "x" * 200 + ")" in text
    assert "unknown failure" in str(solver_error(settings, "forward", "  ", 0, 0))


class Cubic(VelocityField):
    """dx/dt = 10 a x³: from x = 5 it blows up at t = 1/500, where LSODA keeps evaluating without end."""

    features = 2

    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Parameter(torch.ones(()))

    def forward(self, t: Tensor, x: Tensor, context: Tensor | None = None) -> Tensor:
        return 10 * self.a * x**3


# The scipy wrapper cannot backpropagate through its steps: without an adjoint it runs without grad only.
SCIPY_SOLVES = pytest.mark.parametrize("adjoint, grad", [(True, True), ("torchdiffeq", True), (False, False)])


@SCIPY_SOLVES
def test_the_scipy_solver_stops_at_max_num_steps_evaluations_instead_of_running_forever(adjoint, grad):
    cnf = CNF(Cubic(), method="scipy_solver", max_num_steps=300, adjoint=adjoint)
    with torch.set_grad_enabled(grad), pytest.raises(SolverError, match=r"forward .*more than max_num_steps=300 field evaluations.*301 forward"):
        cnf(torch.full((4, 2), 5.0))


@pytest.mark.filterwarnings("ignore:The following arguments have no effect")  # LSODA's min_step, given to RK45
@SCIPY_SOLVES
def test_a_scipy_solve_that_gives_up_short_of_the_end_time_is_an_error_not_the_start_state(adjoint, grad, monkeypatch):
    # RK45 gives up at the blow-up (status -1); torchdiffeq then returns the times reached, here only t = 0.
    import torchdiffeq._impl.scipy_wrapper as wrapper

    real = wrapper.solve_ivp
    monkeypatch.setattr(wrapper, "solve_ivp", lambda *args, **kwargs: real(*args, **{**kwargs, "method": "RK45"}))
    cnf = CNF(Cubic(), method="scipy_solver", adjoint=adjoint)
    with torch.set_grad_enabled(grad), pytest.raises(SolverError, match=r"forward .*solve failed \(the solver gave up before the end time"):
        cnf(torch.full((4, 2), 5.0))  # the start state, with log-det 0, before


@pytest.mark.parametrize("adjoint", [True, "torchdiffeq"])
def test_a_scipy_adjoint_solve_that_gives_up_is_an_error(adjoint, monkeypatch):
    import torchdiffeq._impl.scipy_wrapper as wrapper

    cnf = CNF(Cubic(), method="scipy_solver", adjoint=adjoint)
    with torch.no_grad():
        cnf.field.a.fill_(1e-3)  # x(1) = 5/sqrt(1 - 0.5): the forward solve is fine
    z, logdet = cnf(torch.full((4, 2), 5.0))
    real = wrapper.solve_ivp

    def gives_up(*args, **kwargs):  # as solve_ivp does on failure: only the times reached, here the first
        solution = real(*args, **kwargs)
        solution.y, solution.status = solution.y[:, :1], -1
        return solution

    monkeypatch.setattr(wrapper, "solve_ivp", gives_up)
    with pytest.raises(SolverError, match=r"adjoint \(backward pass of the forward .*gave up before the end time"):
        (z.sum() + logdet.sum()).backward()


def test_a_scipy_adjoint_solve_that_runs_forever_stops_at_max_num_steps_and_is_named_as_the_adjoint():
    """Counting evaluations as steps also bounds the backward solve, and its error names that solve."""

    class Reversible(Cubic):
        """Cubic times a factor: negated after the forward pass, the adjoint's backward run blows up instead."""

        factor = 1.0

        def forward(self, t: Tensor, x: Tensor, context: Tensor | None = None) -> Tensor:
            return self.factor * super().forward(t, x, context)

    field = Reversible()
    with torch.no_grad():
        field.a.fill_(1e-3)  # the forward solve is fine, as in the test above
    cnf = CNF(field, method="scipy_solver", max_num_steps=300)
    z, logdet = cnf(torch.full((4, 2), 5.0))
    field.factor = -100.0  # back from x(1) = 5√2, s = 1 - t: dx/ds = 1000 a x³, which blows up at s = 1/(2·50) = 0.01
    with pytest.raises(SolverError, match=r"adjoint \(backward pass of the forward .*more than max_num_steps=300 field evaluations"):
        (z.sum() + logdet.sum()).backward()
    assert cnf.stats["nfe_backward"] == 301


def test_the_scipy_solver_without_an_adjoint_is_refused_where_a_gradient_is_wanted():
    cnf = CNF(TimeMLP(2, (8,)), method="scipy_solver", adjoint=False)
    x = torch.randn(4, 2)
    with pytest.raises(ConfigurationError, match=r"'scipy_solver' steps in NumPy, so adjoint=False .*use adjoint=True"):
        cnf(x)  # an output without a graph before: backward() failed later, far from the cause
    frozen = CNF(TimeMLP(2, (8,)).requires_grad_(False), method="scipy_solver", adjoint=False)
    with pytest.raises(ConfigurationError, match=r"'scipy_solver' steps in NumPy"):
        frozen(x.clone().requires_grad_(True))  # no parameter to train, but the input's gradient is wanted
    with torch.no_grad():
        z, logdet = cnf(x)  # no gradient wanted: fine
    with_adjoint = CNF(cnf.field, method="scipy_solver")
    z2, logdet2 = with_adjoint(x)
    logdet2.sum().backward()
    assert all(p.grad is not None for p in cnf.field.parameters())
    torch.testing.assert_close(z2.detach(), z, atol=1e-4, rtol=0)
