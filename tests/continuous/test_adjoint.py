"""ctflows' own adjoint (CNF(adjoint=True)) against direct backpropagation and torchdiffeq's odeint_adjoint."""
from __future__ import annotations

import shutil

import pytest
import torch

from ctflows.continuous import CNF, ConcatSquashMLP
from ctflows.continuous.adjoint import adjoint_error_norm, state_error_norm
from ctflows.errors import ConfigurationError, InputError

F64 = torch.float64


def make_cnf(adjoint, *, context: int | None = 2, **kwargs) -> CNF:
    torch.manual_seed(0)
    field = ConcatSquashMLP(3, (16, 16), activation="tanh", context_features=context, init_scale=1.0)
    kwargs = {"atol": 1e-10, "rtol": 1e-10, "learn_end_time": True, **kwargs}
    return CNF(field, adjoint=adjoint, **kwargs).to(F64).train()


def gradients(cnf: CNF, inverse: bool, seed: int = 3) -> list[torch.Tensor]:
    """Gradients of a loss using the output, the log-det and every regularizer, w.r.t. parameters, input and context."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(6, 3, dtype=F64, generator=g).requires_grad_(True)
    c = torch.randn(6, 2, dtype=F64, generator=g).requires_grad_(True)
    torch.manual_seed(11)  # the same Hutchinson probes in every run
    z, logdet = (cnf.inverse if inverse else cnf)(x, c)
    loss = (0.5 * z.pow(2).sum(-1) - 0.7 * logdet).mean()
    for value in cnf.stats.get("regularization", {}).values():
        loss = loss + 0.3 * value
    return list(torch.autograd.grad(loss, [*cnf.parameters(), x, c]))


@pytest.mark.parametrize("inverse", [False, True])
@pytest.mark.parametrize(
    "settings",
    [
        dict(divergence="exact"),
        dict(divergence="hutchinson", regularization=("kinetic_energy", "jacobian_frobenius")),
        dict(divergence="exact", regularization=("kinetic_energy", "jacobian_frobenius"), field_jvp=False),
        dict(divergence="exact", seminorm=False),
        dict(divergence="exact", method="rk4", step_size=0.01),
    ],
    ids=["exact", "hutchinson-regularized", "reverse-mode-regularized", "no-seminorm", "rk4"],
)
def test_gradients_equal_direct_backpropagation_and_torchdiffeqs_adjoint(settings, inverse):
    direct = gradients(make_cnf(False, **settings), inverse)
    ours = gradients(make_cnf(True, **settings), inverse)
    theirs = gradients(make_cnf("torchdiffeq", **settings), inverse)
    for a, b, c in zip(ours, direct, theirs):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-8)
        torch.testing.assert_close(c, b, rtol=1e-4, atol=1e-8)


def test_the_end_time_gradient_is_the_derivative_of_the_loss():
    """dL/dT by the adjoint's end-point formula against a central finite difference in T (float64)."""
    # A finite difference needs the same step grid in all three solves; a warm-started first step would move it.
    cnf = make_cnf(True, context=None, warm_start_step=False)
    x = torch.randn(5, 3, dtype=F64, generator=torch.Generator().manual_seed(2))

    def loss() -> torch.Tensor:
        z, logdet = cnf(x)
        return (0.5 * z.pow(2).sum(-1) - logdet).mean()

    (grad,) = torch.autograd.grad(loss(), [cnf.raw_end_time])
    h = 1e-5
    with torch.no_grad():
        cnf.raw_end_time += h
        up = loss()
        cnf.raw_end_time -= 2 * h
        down = loss()
        cnf.raw_end_time += h
    torch.testing.assert_close(grad, (up - down) / (2 * h), rtol=1e-5, atol=1e-9)


def test_ours_integrates_fewer_states_and_counts_its_evaluations():
    ours, theirs = make_cnf(True, atol=1e-6, rtol=1e-6), make_cnf("torchdiffeq", atol=1e-6, rtol=1e-6)
    for cnf in (ours, theirs):
        gradients(cnf, inverse=False)
    assert ours.stats["nfe_backward"] > 0
    # Both spend one evaluation on dL/dT at the end point; torchdiffeq also integrates a time adjoint.
    assert ours.stats["nfe_backward"] <= theirs.stats["nfe_backward"] + 1


@pytest.mark.parametrize("bad", ["adjoint", "yes", 1, None])
def test_unknown_adjoint_settings_are_refused(bad):
    with pytest.raises(ConfigurationError, match="adjoint must be"):
        CNF(ConcatSquashMLP(2, (8,)), adjoint=bad)


@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None, reason="torch.compile on CPU needs a C++ compiler")
@pytest.mark.parametrize("inverse", [False, True])
def test_the_compiled_adjoint_products_give_the_eager_gradients(inverse):
    """compile_field=True runs each adjoint evaluation as one compiled graph (torch.func.vjp); context, probes, regularizers."""
    settings = dict(divergence="hutchinson", regularization=("kinetic_energy", "jacobian_frobenius"))
    eager = gradients(make_cnf(True, **settings), inverse)
    compiled_cnf = make_cnf(True, compile_field=True, **settings)
    products = compiled_cnf._jacobian_products()
    calls = []
    compiled_product = products.vector_jacobian_product
    products.vector_jacobian_product = lambda *a, **k: calls.append(1) or compiled_product(*a, **k)
    compiled = gradients(compiled_cnf, inverse)
    # Every evaluation of the adjoint solve went through the compiled product (one more evaluates f for dL/dT).
    assert len(calls) > 0 and len(calls) == compiled_cnf.stats["nfe_backward"] - 1
    for a, b in zip(compiled, eager):
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-10)


def test_the_error_norms_read_only_what_controls_the_step():
    features, batch, sizes = 2, 3, [4, 5]
    g = torch.Generator().manual_seed(0)
    s = torch.randn(batch, features + 2, dtype=F64, generator=g)
    spiked = s.clone()
    spiked[:, features:] = 1e6  # log-det and a regularizer
    assert state_error_norm(features, True)(spiked) == state_error_norm(features, True)(s)
    assert state_error_norm(features, False)(spiked) > 0.5e6
    n = batch * features
    y = torch.randn(2 * n + sum(sizes), dtype=F64, generator=g)
    spiked = y.clone()
    spiked[2 * n :] = 1e6  # the parameter adjoints
    assert adjoint_error_norm(n, sizes, True)(spiked) == adjoint_error_norm(n, sizes, True)(y)
    assert adjoint_error_norm(n, sizes, False)(spiked) > 0.5e6
    spiked[n : 2 * n] = 1e7  # a_x always counts
    assert adjoint_error_norm(n, sizes, True)(spiked) > 0.5e7


def test_each_part_of_the_state_counts_in_full_in_the_error_norms():
    """The norms are the largest RMS over the parts (torchdiffeq's norm over a tuple state), not one RMS over all
    entries: an error confined to one part, however few its entries, is not averaged away over the others."""
    features, batch, sizes = 2, 3, [1, 9]
    n = batch * features
    g = torch.Generator().manual_seed(0)
    s = 1e-3 * torch.randn(batch, features + 2, dtype=F64, generator=g)
    s[:, features] = 1e6  # the log-det alone
    torch.testing.assert_close(state_error_norm(features, False)(s), torch.tensor(1e6, dtype=F64))
    y = 1e-3 * torch.randn(2 * n + sum(sizes), dtype=F64, generator=g)
    y[2 * n] = 1e6  # the one-entry parameter's adjoint alone
    torch.testing.assert_close(adjoint_error_norm(n, sizes, False)(y), torch.tensor(1e6, dtype=F64))
    y[2 * n] = 0.0
    y[n : 2 * n] = 1e6  # a_x alone: the seminorm keeps it in full
    torch.testing.assert_close(adjoint_error_norm(n, sizes, True)(y), torch.tensor(1e6, dtype=F64))


@pytest.mark.parametrize("end_time, tol, direction", [(1.0, 1e-6, "nfe_backward"), (2.0, 1e-7, "nfe_forward")])
def test_the_seminorm_saves_evaluations(end_time, tol, direction):
    counts = []
    for seminorm in (True, False):
        torch.manual_seed(0)
        field = ConcatSquashMLP(3, (16, 16), activation="tanh", context_features=2, init_scale=3.0 if end_time == 1.0 else 2.0)
        cnf = CNF(field, adjoint=True, atol=tol, rtol=tol, end_time=end_time, seminorm=seminorm).to(F64).train()
        gradients(cnf, inverse=False)
        counts.append(cnf.stats[direction])
    assert counts[0] < counts[1]


@pytest.mark.parametrize("adjoint", [True, "torchdiffeq"])
def test_a_second_derivative_through_the_adjoint_fails_loudly(adjoint):
    """Neither backward solve builds a graph: a second derivative must raise, not come out zero."""
    cnf = make_cnf(adjoint, context=None)
    x = torch.randn(4, 3, dtype=F64).requires_grad_(True)
    z, logdet = cnf(x)
    (grad_x,) = torch.autograd.grad((z.pow(2).sum() - logdet.sum()), x, create_graph=True)
    with pytest.raises(RuntimeError, match="twice"):
        grad_x.pow(2).sum().backward()


@pytest.mark.parametrize("adjoint", [True, "torchdiffeq"])
@pytest.mark.parametrize("poisoned", ["z", "logdet"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_non_finite_loss_is_not_blamed_on_the_solver(adjoint, poisoned, value):
    cnf = make_cnf(adjoint, context=None)
    z, logdet = cnf(torch.randn(4, 3, dtype=F64))
    bad = torch.tensor(value, dtype=F64)
    loss = z.sum() * (bad if poisoned == "z" else 1) + logdet.sum() * (bad if poisoned == "logdet" else 1)
    with pytest.raises(InputError, match="gradient arriving at its output is NaN or Inf"):
        loss.backward()
    assert cnf.stats["nfe_backward"] == 0  # raised before the backward solve took a step
