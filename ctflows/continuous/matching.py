"""Conditional flow matching: training a CNF's velocity field by regression, without solving the ODE.

Path in ctflows' direction (data x₀ at t = 0, base sample z at t = T), with s = t/T:

    x_t = (1 − s) x₀ + s z + σ ε,      target  u = dx_t/dt = (z − x₀) / T,      loss = E ‖v(t, x_t) − u‖²

(Lipman et al. 2023 flow matching with the straight "optimal-transport" path; Tong et al. 2024 for the
constant-σ path and minibatch optimal-transport coupling of x₀ and z). The trained field drives an
ordinary :class:`~ctflows.continuous.CNF`, so log-densities stay exact (with the exact divergence). Fixed
layers may come before the CNF (a :class:`~ctflows.linear.Standardization` for data in raw units): the data
are pushed through them first, and the path runs from there.
"""
from __future__ import annotations

import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn

from ctflows.continuous.cnf import CNF
from ctflows.continuous.single import split_at_cnf
from ctflows.core.transform import Transform, forward_through
from ctflows.errors import ConfigurationError

COUPLINGS = ("independent", "ot")
TIME_SAMPLINGS = ("stratified", "uniform")


def path_times(batch: int, sampling: str, *, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Path times s ∈ [0, 1] for ``batch`` samples, shape ``[batch, 1]``, in ``dtype``: each uniform on [0, 1].

    ``"uniform"``: independent draws. ``"stratified"``: s_i = (π(i) + u_i) / B with π a random permutation and
    u_i ~ U[0, 1), one draw in each of the B strata [k/B, (k+1)/B] (closed: rounding to ``dtype`` may land on
    the upper end): every s_i is still uniform, so the loss keeps its expectation, but the batch covers [0, 1]
    evenly and the time integral's share of the loss variance falls (stratified sampling, e.g. Owen 2013,
    "Monte Carlo theory, methods and examples", ch. 10).
    """
    if sampling not in TIME_SAMPLINGS:
        raise ConfigurationError(f"path times {sampling!r}: not one of {TIME_SAMPLINGS}")
    if sampling == "uniform":
        return torch.rand(batch, 1, dtype=dtype, device=device)
    # float64, so that the stratum indices stay exact (fp16 and bf16 cannot hold integers past 2048 or 256)
    u = torch.rand(batch, 1, dtype=torch.float64, device=device)
    strata = torch.randperm(batch, device=device).to(torch.float64).unsqueeze(1)
    return ((strata + u) / batch).to(dtype)


def optimal_transport_pairing(x: Tensor, z: Tensor) -> Tensor:
    """Reorder ``z [B, D]`` so that pairs (x_i, z_i) minimise Σ‖x_i − z_i‖² (exact assignment, O(B³) on CPU)."""
    cost = torch.cdist(x.detach().flatten(1).double(), z.detach().flatten(1).double()).square()
    _, columns = linear_sum_assignment(cost.cpu().numpy())
    return z[torch.as_tensor(columns, device=z.device)]


def flow_matching_loss(
    field: nn.Module,
    x: Tensor,
    z: Tensor,
    context: Tensor | None = None,
    *,
    end_time: float = 1.0,
    sigma: float = 0.0,
    times: str = "uniform",
) -> Tensor:
    """Mean squared regression error of ``field`` onto the straight path from ``x [B, D]`` to ``z [B, D]``.

    One time per sample, uniform on [0, T], drawn as ``times`` says (:func:`path_times`); returns a scalar.
    """
    s = path_times(x.shape[0], times, dtype=x.dtype, device=x.device)
    x_t = (1 - s) * x + s * z
    if sigma > 0:
        x_t = x_t + sigma * torch.randn_like(x_t)
    target = (z - x) / end_time
    v = field((s * end_time).squeeze(1), x_t, context)
    return (v - target).square().sum(dim=1).mean()


def trained_cnf(flow: nn.Module) -> tuple[list[Transform], CNF]:
    """``(front, cnf)`` of a model whose last layer is its one CNF, every layer in front of it fixed.

    Flow matching trains the CNF's field alone, so a layer in front with trainable parameters would only be
    moved by weight decay: such models get a ConfigurationError.
    """
    front, cnf = split_at_cnf(flow, "flow matching")
    trainable = [type(layer).__name__ for layer in front if any(p.requires_grad for p in layer.parameters())]
    if trainable:
        raise ConfigurationError(
            f"flow matching trains the CNF's velocity field alone, but the layers in front of it ({', '.join(trainable)}) "
            "have trainable parameters; put a fixed ctflows.Standardization there instead, or train the model by "
            "maximum likelihood (objective='likelihood')"
        )
    return front, cnf


class FlowMatching:
    """The flow-matching objective for ``fit``: ``objective=FlowMatching(coupling="ot")``.

    Args:
        coupling: ``"ot"`` (minibatch optimal transport: straighter paths, fewer solver steps later) or
            ``"independent"`` (x₀ and z drawn independently, the baseline).
        sigma: width σ of the Gaussian tube around each straight path (0 gives rectified-flow paths).
        times: how the batch's path times are drawn: ``"uniform"`` (independent draws, as in the papers) or
            ``"stratified"`` (one per 1/B of [0, T]: the same expected loss, and a lower variance of its time
            average; at batch 4096 on 2-D toys the gradient's variance did not measurably change:
            ``benchmarks/flow_matching_variance.py``).

    Base samples come from the model's base distribution, so a learned base is respected (not trained).
    """

    name = "flow_matching"

    def __init__(self, coupling: str = "ot", sigma: float = 0.0, times: str = "uniform") -> None:
        if coupling not in COUPLINGS:
            raise ConfigurationError(f"FlowMatching: coupling {coupling!r} is not one of {COUPLINGS}")
        if not sigma >= 0:
            raise ConfigurationError(f"FlowMatching: sigma must be >= 0, got {sigma}")
        if times not in TIME_SAMPLINGS:
            raise ConfigurationError(f"FlowMatching: times {times!r} is not one of {TIME_SAMPLINGS}")
        self.coupling, self.sigma, self.times = coupling, float(sigma), times

    def __repr__(self) -> str:
        return f"FlowMatching(coupling={self.coupling!r}, sigma={self.sigma!r}, times={self.times!r})"

    def __call__(self, flow: nn.Module, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """``(loss, None)``: flow matching has no likelihood to report per step."""
        front, cnf = trained_cnf(flow)
        flow.transform.check(x, context)  # the shape, finiteness and context checks maximum likelihood gets
        if self.coupling == "ot" and context is not None:
            raise ConfigurationError(
                "FlowMatching: minibatch OT would pair points across different contexts; use coupling='independent'"
            )
        # The path ends at the base as it stands: differentiable base samples would let the loss shrink a
        # learned base (every target (z - x)/T with it) instead of fitting the field.
        with torch.no_grad():
            x, _ = forward_through(front, x, context)
            z = flow.base.sample(x.shape[0], context).to(x)
        if self.coupling == "ot":
            z = optimal_transport_pairing(x, z)
        end_time = float(torch.as_tensor(cnf.end_time).detach())  # flow matching does not train T
        return flow_matching_loss(cnf.field, x, z, context, end_time=end_time, sigma=self.sigma,
                                  times=self.times), None
