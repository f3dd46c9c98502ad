"""RNODE regularizers integrated in the solve, checked on a linear field where they have closed forms."""
from __future__ import annotations

import copy
import gc
import math
import pickle
import weakref

import pytest
import torch

import ctflows
import ctflows.continuous.cnf as cnf_module
from ctflows.continuous import CNF, ConcatSquashMLP, jacobian_frobenius_rate, kinetic_energy_rate
from ctflows.continuous.regularization import check_regularization
from ctflows.continuous.trajectory import cnf_path
from ctflows.core.stats import regularization_terms
from ctflows.errors import ConfigurationError, InputError

T = 0.7


def gramian(a: torch.Tensor, t: float) -> torch.Tensor:
    """Q = ∫_0^t expm(Aᵀs) expm(As) ds by Van Loan's block exponential (Van Loan 1978)."""
    d = a.shape[0]
    m = torch.zeros(2 * d, 2 * d, dtype=a.dtype)
    m[:d, :d], m[:d, d:], m[d:, d:] = -a.T, torch.eye(d, dtype=a.dtype), a
    e = torch.linalg.matrix_exp(m * t)
    return e[d:, d:].T @ e[:d, d:]


def test_kinetic_energy_equals_the_analytic_integral(linear_field, matrix_a):
    cnf = CNF(linear_field(matrix_a), end_time=T, atol=1e-10, rtol=1e-10, regularization="kinetic_energy").double()
    x = torch.randn(8, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    cnf(x)
    # ‖v‖² = ‖A x(s)‖², so K = ∫ x0ᵀ expm(Aᵀs) AᵀA expm(As) x0 ds; with A applied, use y0 = A x0 (A commutes with expm(As)).
    y = x @ matrix_a.T
    expected = torch.einsum("bi,ij,bj->b", y, gramian(matrix_a, T), y).mean()
    torch.testing.assert_close(cnf.stats["regularization"]["kinetic_energy"], expected, atol=1e-8, rtol=1e-8)


def test_frobenius_is_exact_with_the_exact_divergence(linear_field, matrix_a):
    cnf = CNF(linear_field(matrix_a), end_time=T, divergence="exact", regularization=["jacobian_frobenius"]).double()
    cnf(torch.randn(4, 3, dtype=torch.float64))
    expected = T * matrix_a.pow(2).sum()
    torch.testing.assert_close(cnf.stats["regularization"]["jacobian_frobenius"], expected, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("noise", ["rademacher", "gaussian"])
def test_frobenius_expectation_with_hutchinson(linear_field, matrix_a, noise):
    torch.manual_seed(3)
    n = 4000
    cnf = CNF(linear_field(matrix_a), end_time=T, divergence="hutchinson", noise=noise,
              regularization=("kinetic_energy", "jacobian_frobenius")).double()
    cnf(torch.randn(n, 3, dtype=torch.float64))
    # The batch mean is itself the Monte Carlo average; its standard error comes from T‖εᵀA‖² over fresh probes.
    eps = torch.randn(n, 3, dtype=torch.float64) if noise == "gaussian" else torch.randint(0, 2, (n, 3)).double() * 2 - 1
    se = (T * (eps @ matrix_a).pow(2).sum(-1)).std() / math.sqrt(n)
    expected = T * matrix_a.pow(2).sum()
    assert abs(float(cnf.stats["regularization"]["jacobian_frobenius"] - expected)) < 4 * float(se)


@pytest.mark.parametrize("jvp", [False, True], ids=["reverse_mode", "field_jvp"])
@pytest.mark.parametrize("adjoint", [True, False])
def test_each_regularizer_has_the_gradient_of_its_closed_form(linear_field, linear_jvp_field, matrix_a, adjoint, jvp):
    # Gathered by the model's stats, each term's gradient in A is that of its closed form (autograd through
    # the matrix exponential for the kinetic energy; 2 T A for the Frobenius norm), term by term: a sum of
    # both would hide one that lost its gradient. Both ways of getting the Jacobian (autograd on v, or the
    # field's own forward-mode products) must keep it in the graph.
    x = torch.randn(6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    a = matrix_a.clone().requires_grad_(True)
    closed_forms = {
        "kinetic_energy": torch.einsum("bi,ij,bj->b", x @ a.T, gramian(a, T), x @ a.T).mean(),
        "jacobian_frobenius": T * a.square().sum(),
    }
    field = (linear_jvp_field if jvp else linear_field)(matrix_a, learnable=True)
    cnf = CNF(field, end_time=T, atol=1e-10, rtol=1e-10, divergence="exact", adjoint=adjoint,
              regularization=tuple(closed_forms)).double()
    cnf(x)
    terms = regularization_terms(cnf)
    assert set(terms) == set(closed_forms)
    for name, closed_form in closed_forms.items():
        (grad,) = torch.autograd.grad(terms[name], field.a, retain_graph=True)
        (expected,) = torch.autograd.grad(closed_form, a)
        torch.testing.assert_close(grad, expected, rtol=1e-6, atol=1e-8, msg=name)


@pytest.mark.parametrize("jvp", [False, True], ids=["reverse_mode", "field_jvp"])
@pytest.mark.parametrize("adjoint", [True, False])
def test_hutchinson_terms_are_those_of_the_drawn_probe_with_their_gradients(
    linear_field, linear_jvp_field, matrix_a, adjoint, jvp, monkeypatch
):
    """With the probe ε a solve drew, a linear field's Hutchinson log-det is T εᵀAε and its Frobenius term
    T‖εᵀJ‖² (reverse mode, ‖Aᵀε‖²) or T‖Jε‖² (forward mode, ‖Aε‖²), batch-averaged: values and gradients in A.

    A regularizer rate that lost its graph, or two rates swapped, gives other numbers here.
    """
    original, drawn = cnf_module.sample_noise, []

    def recording_sample_noise(*args, **kwargs) -> torch.Tensor:
        drawn.append(original(*args, **kwargs))
        return drawn[-1]

    monkeypatch.setattr(cnf_module, "sample_noise", recording_sample_noise)
    torch.manual_seed(5)
    x = torch.randn(6, 3, dtype=torch.float64)
    field = (linear_jvp_field if jvp else linear_field)(matrix_a, learnable=True)
    cnf = CNF(field, end_time=T, atol=1e-10, rtol=1e-10, divergence="hutchinson", adjoint=adjoint,
              regularization=("kinetic_energy", "jacobian_frobenius")).double()
    _, logdet = cnf(x)
    terms = regularization_terms(cnf)
    (eps,) = drawn
    a = matrix_a.clone().requires_grad_(True)
    probe_image = eps @ a.T if jvp else eps @ a  # rows A ε (J ε) or Aᵀ ε (εᵀ J)
    closed_forms = {
        "logdet": T * torch.einsum("bi,ij,bj->", eps, a, eps),
        "kinetic_energy": torch.einsum("bi,ij,bj->b", x @ a.T, gramian(a, T), x @ a.T).mean(),
        "jacobian_frobenius": T * probe_image.square().sum(-1).mean(),
    }
    got = {"logdet": logdet.sum(), **terms}
    for name, closed_form in closed_forms.items():
        torch.testing.assert_close(got[name], closed_form, rtol=1e-7, atol=1e-9, msg=name)
        (grad,) = torch.autograd.grad(got[name], field.a, retain_graph=True)
        (expected,) = torch.autograd.grad(closed_form, a, retain_graph=True)
        torch.testing.assert_close(grad, expected, rtol=1e-6, atol=1e-8, msg=name)


def simpson(values: torch.Tensor, span: float) -> torch.Tensor:
    """Composite Simpson's rule over the first axis of ``values`` (an odd number of equally spaced nodes)."""
    n = values.shape[0]
    weights = torch.ones(n, dtype=values.dtype)
    weights[1:-1:2], weights[2:-1:2] = 4.0, 2.0
    return torch.einsum("k,k...->...", weights, values) * span / (3 * (n - 1))


@pytest.mark.parametrize("field_jvp", [True, False])
def test_regularizers_of_a_neural_field_match_a_quadrature_along_its_path(field_jvp):
    """For a time-dependent MLP field, K and B equal Simpson's rule on ‖v‖² and ‖∂v/∂x‖_F² sampled along the
    path that cnf_path solves separately, with each Jacobian taken by plain autograd."""
    torch.manual_seed(0)
    field = ConcatSquashMLP(2, (16, 16), activation="tanh", init_scale=1.0).double()
    cnf = CNF(field, end_time=T, atol=1e-10, rtol=1e-10, divergence="exact", field_jvp=field_jvp,
              regularization=("kinetic_energy", "jacobian_frobenius")).double()
    x = torch.randn(4, 2, dtype=torch.float64)
    cnf(x)
    times = torch.linspace(0, T, 101, dtype=torch.float64)
    path = cnf_path(cnf, x, times)
    speeds, roughness = [], []
    for t, points in zip(times, path):
        jacobians = torch.stack([torch.autograd.functional.jacobian(lambda p: field(t, p.unsqueeze(0))[0], p) for p in points])
        speeds.append(field(t, points).detach().square().sum(-1))
        roughness.append(jacobians.square().sum((-2, -1)))
    terms = cnf.stats["regularization"]
    torch.testing.assert_close(terms["kinetic_energy"], simpson(torch.stack(speeds), T).mean(), rtol=1e-7, atol=0)
    torch.testing.assert_close(terms["jacobian_frobenius"], simpson(torch.stack(roughness), T).mean(), rtol=1e-7, atol=0)


def test_a_model_holding_the_last_calls_regularizers_deep_copies_and_pickles(linear_field, matrix_a):
    # The regularizers stay in stats with their graph (fit weights them into the loss); copies keep values.
    cnf = CNF(linear_field(matrix_a, learnable=True), end_time=T, regularization="kinetic_energy").double()
    cnf(torch.randn(6, 3, dtype=torch.float64))
    live = cnf.stats["regularization"]["kinetic_energy"]
    assert live.requires_grad
    for twin in (copy.deepcopy(cnf), pickle.loads(pickle.dumps(cnf))):
        kept = twin.stats["regularization"]["kinetic_energy"]
        assert not kept.requires_grad and float(kept) == float(live.detach())
    assert cnf.stats["regularization"]["kinetic_energy"] is live  # the original still feeds the loss


def test_regularizers_are_off_in_eval_mode_and_names_are_checked(linear_field, matrix_a):
    cnf = CNF(linear_field(matrix_a), regularization="kinetic_energy").double().eval()
    with torch.no_grad():
        cnf(torch.randn(3, 3, dtype=torch.float64))
    assert "regularization" not in cnf.stats
    for bad in ("l2", 5, [None], ["kinetic_energy", "l2"]):
        with pytest.raises(ConfigurationError, match="^CNF: .*regularization"):
            CNF(linear_field(matrix_a), regularization=bad)
    # Weights belong to fit: a CNF given {name: weight} would keep the names and drop the weights unseen.
    with pytest.raises(ConfigurationError, match=r"their weights go to fit\(regularization=\{'kinetic_energy': 0\.1\}\)"):
        CNF(linear_field(matrix_a), regularization={"kinetic_energy": 0.1})


def test_a_cnf_without_regularization_reports_no_terms_in_training(linear_field, matrix_a):
    """The default (regularization=None) integrates no regularizer states: a training call leaves no terms."""
    cnf = CNF(linear_field(matrix_a)).double()
    assert cnf.training
    cnf(torch.randn(3, 3, dtype=torch.float64))
    assert "regularization" not in cnf.stats and regularization_terms(cnf) == {}


def test_exact_frobenius_is_the_same_in_forward_and_reverse_mode():
    values = []
    for field_jvp in (True, False):
        torch.manual_seed(0)
        field = ConcatSquashMLP(3, (8, 8), activation="softplus", init_scale=1.0)
        cnf = CNF(field, divergence="exact", regularization="jacobian_frobenius", field_jvp=field_jvp, atol=1e-10, rtol=1e-10)
        cnf.double()(torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)))
        values.append(cnf.stats["regularization"]["jacobian_frobenius"])
    torch.testing.assert_close(values[0], values[1], atol=1e-9, rtol=1e-9)
    assert values[0] > 0


@pytest.mark.parametrize("adjoint", [False, True, "torchdiffeq"])
def test_a_regularized_training_step_leaves_no_graph_behind(adjoint):
    """Each call's stats (holding the regularizer terms, so their graph) must be freed once the next call replaces
    them. A backward-counting hook that referred to them strongly made a cycle through the autograd graph, which
    Python's collector cannot see: direct backpropagation with RNODE leaked every step's graph (1-3 MB per step)."""
    torch.manual_seed(0)
    flow = ctflows.cnf(2, (16, 16), adjoint=adjoint, regularization=("kinetic_energy", "jacobian_frobenius"))
    (cnf,) = [m for m in flow.modules() if isinstance(m, CNF)]
    previous = None
    for _ in range(3):
        loss = -flow.log_prob(torch.randn(32, 2)).mean() + sum(regularization_terms(flow).values())
        loss.backward()
        assert cnf.stats["nfe_backward"] > 0  # the hook still counts
        del loss
        gc.collect()
        assert previous is None or previous() is None, "the previous call's regularizer term (and graph) is still alive"
        previous = weakref.ref(cnf.stats["regularization"]["kinetic_energy"])


def test_the_inverse_reports_the_same_positive_regularizers_as_the_forward_pass(linear_field, matrix_a):
    # The inverse solve runs the same path backwards (T -> 0); ∫_0^T ‖v‖² dt and ∫_0^T ‖J‖_F² dt do not
    # depend on the direction it is traversed, so both must equal the forward values, and be positive.
    cnf = CNF(linear_field(matrix_a), end_time=T, atol=1e-10, rtol=1e-10, divergence="exact",
              regularization=["kinetic_energy", "jacobian_frobenius"]).double()
    x = torch.randn(8, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    z, _ = cnf(x)
    forward = {k: v.detach() for k, v in cnf.stats["regularization"].items()}
    cnf.inverse(z.detach())
    backward = cnf.stats["regularization"]
    assert float(backward["kinetic_energy"]) > 0 and float(backward["jacobian_frobenius"]) > 0
    torch.testing.assert_close(backward["kinetic_energy"], forward["kinetic_energy"], atol=1e-8, rtol=1e-8)
    torch.testing.assert_close(backward["jacobian_frobenius"], T * matrix_a.pow(2).sum(), atol=1e-10, rtol=1e-10)


def test_repeated_regularizer_names_are_integrated_once():
    assert check_regularization(("kinetic_energy", "jacobian_frobenius", "kinetic_energy")) == (
        "kinetic_energy", "jacobian_frobenius")
    assert check_regularization(["kinetic_energy", "kinetic_energy"]) == ("kinetic_energy",)


def test_the_rates_are_per_row_sums_of_squares_and_refuse_an_unbatched_tensor():
    v = torch.tensor([[3.0, 4.0], [1.0, -2.0]])
    torch.testing.assert_close(kinetic_energy_rate(v), torch.tensor([25.0, 5.0]))
    jacobians = torch.arange(8.0).reshape(2, 2, 2)
    torch.testing.assert_close(jacobian_frobenius_rate(jacobians), torch.tensor([14.0, 126.0]))
    for rate in (kinetic_energy_rate, jacobian_frobenius_rate):
        for unbatched in (torch.tensor(2.0), torch.ones(3)):
            with pytest.raises(InputError, match=rf"{rate.__name__}: expects a batch of shape \[B, D\]"):
                rate(unbatched)
