"""The solve a CNF runs uses the tolerances it was given, in the right roles, with error control on x only.

Reference: torchdiffeq's own ``odeint`` on the same augmented ODE (x, log-det), written out here with the
divergence computed by brute force, and the same atol, rtol and an RMS error norm over x alone. With atol and
rtol far apart, a solve that swapped them, or that let the log-det into the error norm, takes other steps.
"""
from __future__ import annotations

import warnings

import pytest
import torch
from torchdiffeq import odeint

from ctflows.continuous import CNF, ConcatSquashMLP
from ctflows.continuous import solve as solve_module

F64 = torch.float64
ATOL, RTOL = 1e-9, 1e-4  # far apart, so that swapping them changes the steps


def make_cnf(**kwargs) -> CNF:
    torch.manual_seed(0)
    field = ConcatSquashMLP(3, (16, 16), activation="tanh", init_scale=2.0)
    return CNF(field, **{"atol": ATOL, "rtol": RTOL, "warm_start_step": False, **kwargs}).to(F64)


def data() -> torch.Tensor:
    # A small state, where atol rather than rtol · |x| sets the error allowed: swapping them changes the steps.
    return 0.01 * torch.randn(8, 3, dtype=F64, generator=torch.Generator().manual_seed(1))


def reference_solve(cnf: CNF, x: torch.Tensor, *, atol: float, rtol: float, seminorm: bool = True):
    """``(z, logdet, evaluations)`` from torchdiffeq's dopri5 on d/dt (x, ℓ) = (v, tr ∂v/∂x), x-only RMS norm."""
    field = cnf.field
    calls = [0]

    def velocity(t, x_row):
        return field(t, x_row.unsqueeze(0))[0]

    def rhs(t, state):
        calls[0] += 1
        xs, _ = state
        with torch.no_grad():
            v = field(t, xs)
            jac = torch.func.vmap(torch.func.jacrev(velocity, argnums=1), in_dims=(None, 0))(t, xs)
        return v, jac.diagonal(dim1=-2, dim2=-1).sum(-1)

    options = {"norm": lambda state: state[0].pow(2).mean().sqrt()} if seminorm else {}
    times = torch.tensor([0.0, float(cnf.end_time)], dtype=F64)
    zs, logdets = odeint(rhs, (x, x.new_zeros(x.shape[0])), times, atol=atol, rtol=rtol, method="dopri5", options=options)
    return zs[-1], logdets[-1], calls[0]


def test_an_evaluation_solve_is_torchdiffeqs_with_the_eval_tolerances_and_an_x_only_norm():
    cnf = make_cnf(eval_atol=ATOL, eval_rtol=RTOL).eval()
    x = data()
    with torch.no_grad():
        z, logdet = cnf(x)
    z_ref, logdet_ref, evaluations = reference_solve(cnf, x, atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(z, z_ref, atol=1e-12, rtol=0)
    torch.testing.assert_close(logdet, logdet_ref, atol=1e-12, rtol=0)
    assert cnf.stats["nfe_forward"] == evaluations  # the count reported is the work done
    # The same tolerances swapped give a visibly different solution (so the comparison above can tell).
    z_swapped, _, _ = reference_solve(cnf, x, atol=RTOL, rtol=ATOL)
    assert (z_swapped - z_ref).abs().max() > 1e-9


def test_without_the_seminorm_the_log_det_takes_part_in_the_error_control():
    cnf = make_cnf(eval_atol=ATOL, eval_rtol=RTOL, seminorm=False).eval()
    x = data()
    with torch.no_grad():
        z, logdet = cnf(x)
    z_ref, logdet_ref, evaluations = reference_solve(cnf, x, atol=ATOL, rtol=RTOL, seminorm=False)
    torch.testing.assert_close(z, z_ref, atol=1e-12, rtol=0)
    assert cnf.stats["nfe_forward"] == evaluations


@pytest.mark.parametrize("seminorm", [True, False])
@pytest.mark.parametrize("adjoint", [False, True, "torchdiffeq"])
def test_every_training_forward_solve_uses_the_training_tolerances_in_their_roles(adjoint, seminorm):
    """Also the error norm: x only with the seminorm, else torchdiffeq's default (the largest RMS of x and log-det)."""
    cnf = make_cnf(adjoint=adjoint, eval_atol=1e-12, eval_rtol=1e-12, seminorm=seminorm).train()
    x = data()
    z, logdet = cnf(x)
    z_ref, logdet_ref, evaluations = reference_solve(cnf, x, atol=ATOL, rtol=RTOL, seminorm=seminorm)
    torch.testing.assert_close(z.detach(), z_ref, atol=1e-12, rtol=0)
    torch.testing.assert_close(logdet.detach(), logdet_ref, atol=1e-12, rtol=0)
    assert cnf.stats["nfe_forward"] == evaluations


@pytest.mark.parametrize("init_scale", [1.0, 3.0])
def test_torchdiffeqs_adjoint_solve_gets_the_seminorm(init_scale):
    """Its backward solve leaves the parameter (and context) adjoints out of the error norm: fewer evaluations."""
    counts = []
    for seminorm in (True, False):
        torch.manual_seed(0)
        field = ConcatSquashMLP(3, (16, 16), activation="tanh", init_scale=init_scale, context_features=2)
        cnf = CNF(
            field, adjoint="torchdiffeq", atol=1e-7, rtol=1e-7, end_time=2.0, seminorm=seminorm, warm_start_step=False
        ).to(F64).train()
        g = torch.Generator().manual_seed(3)
        x = torch.randn(64, 3, dtype=F64, generator=g)
        c = torch.randn(64, 2, dtype=F64, generator=g).requires_grad_(True)
        z, logdet = cnf(x, c)
        (0.5 * z.pow(2).sum(-1) - 0.7 * logdet).sum().backward()
        counts.append(cnf.stats["nfe_backward"])
    assert counts[0] < counts[1], counts


@pytest.mark.parametrize(
    "adjoint, grad, solver",
    [
        (True, True, "integrate_with_adjoint"),
        ("torchdiffeq", True, "integrate_with_torchdiffeq_adjoint"),
        (False, True, "odeint"),
        (True, False, "odeint"),
        ("torchdiffeq", False, "odeint"),
    ],
)
def test_each_adjoint_setting_runs_its_own_solver(monkeypatch, adjoint, grad, solver):
    """True: ctflows' adjoint; "torchdiffeq": torchdiffeq's odeint_adjoint (wrapped); False, or no grad mode: the plain odeint."""
    called = []
    for name in ("integrate_with_adjoint", "integrate_with_torchdiffeq_adjoint", "odeint"):
        real = getattr(solve_module, name)
        monkeypatch.setattr(solve_module, name, lambda *a, real=real, name=name, **k: (called.append(name), real(*a, **k))[1])
    cnf = make_cnf(adjoint=adjoint).train()
    with torch.set_grad_enabled(grad):
        cnf(data())
    assert called == [solver]


def test_the_scipy_solver_runs_without_callback_warnings_and_agrees_with_dopri5():
    """scipy's wrapper takes no step callbacks: none are offered to it, so torchdiffeq has nothing to warn about."""
    x = data() * 100
    dopri5 = make_cnf(eval_atol=1e-10, eval_rtol=1e-10).eval()
    scipy = make_cnf(method="scipy_solver", eval_atol=1e-10, eval_rtol=1e-10).eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("error")
        z, logdet = scipy(x)
        z_ref, logdet_ref = dopri5(x)
    assert scipy.stats["nfe_forward"] > 0
    torch.testing.assert_close(z, z_ref, atol=1e-6, rtol=0)
    torch.testing.assert_close(logdet, logdet_ref, atol=1e-6, rtol=0)
