"""Each step of the two fits is the building block their docstrings describe, applied to the training points
pushed through the steps before it: whitening, then clipped-Newton radial maps centred on a training point with
the k-nearest bandwidth (dual ascent); marginal maps fitted with the requested kernels and bandwidth, and PCA
rotations (Gaussianization). The training part is recovered by splitting again with the same seed."""
import pytest
import torch

from ctflows.core.flow import Flow
from ctflows.nonparametric import (
    MarginalGaussianization, fit_dual_ascent, fit_gaussianization, newton_beta, pca_rotation, radial_derivatives,
)
from ctflows.nonparametric.holdout import split


def curved_points() -> torch.Tensor:
    """300 correlated, non-Gaussian 2-D points: every step of either fit has something to improve."""
    x = torch.randn(300, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    return torch.stack([x[:, 0], 0.8 * x[:, 0] + 0.6 * x[:, 1] ** 2], dim=1)


def training_part(data: torch.Tensor, seed: int) -> torch.Tensor:
    """The training points the fit with ``Generator().manual_seed(seed)`` and the default fraction used."""
    return split(data, 0.2, torch.Generator().manual_seed(seed), owner="test")[0]


def pushed_through(flow: Flow, x: torch.Tensor) -> list[torch.Tensor]:
    """``x`` before each layer of the fitted chain, and after the last: ``len(layers) + 1`` tensors."""
    states = [x]
    with torch.no_grad():
        for layer in flow.transform.layers:
            states.append(layer(states[-1])[0])
    return states


@pytest.mark.parametrize(("neighbours", "k"), [(0.03, 8), (5, 5), (0.001, 2)], ids=["fraction", "count", "tiny-fraction"])
def test_dual_ascent_whitens_then_takes_clipped_newton_steps_on_the_training_points(neighbours: float, k: int) -> None:
    """A fraction 0.03 of 240 training points asks for ⌈7.2⌉ = 8 neighbours, a count 5 for 5 (centre included), and a
    fraction 0.001 (⌈0.24⌉ = 1, the centre alone: a zero radius) for the least smooth count, 2."""
    data, step_limit = curved_points(), 0.05
    flow = fit_dual_ascent(data, max_steps=30, step_limit=step_limit, neighbours=neighbours, patience=30,
                           generator=torch.Generator().manual_seed(1))
    report = flow.report
    assert report.steps >= 10 and len(report.extra["beta"]) == len(report.validation) - 1
    assert not any(module.training for module in flow.modules())  # returned in eval() mode, as documented
    states = pushed_through(flow, training_part(data, 1))
    # The first layer whitens the training points (not the held-out ones).
    torch.testing.assert_close(states[1].mean(dim=0), torch.zeros(2, dtype=torch.float64), atol=1e-10, rtol=0)
    torch.testing.assert_close(torch.cov(states[1].T), torch.eye(2, dtype=torch.float64), atol=1e-10, rtol=0)
    for step, (layer, x) in enumerate(zip(flow.transform.layers[1:], states[1:]), start=1):
        centre, alpha = layer.centre.detach(), layer.log_bandwidth.detach().exp()
        distances = (x - centre).norm(dim=1)
        assert float(distances.min()) < 1e-12, step  # a pushed training point
        assert float(alpha) == pytest.approx(float(distances.sort().values[k - 1]), rel=1e-12), step
        beta = float(layer.beta.detach())
        assert beta == pytest.approx(float(newton_beta(*radial_derivatives(x, centre, alpha), step_limit)), rel=1e-9), step
        assert abs(beta) <= step_limit * (1 + 1e-12) and beta == pytest.approx(report.extra["beta"][step - 1], rel=1e-12)


def test_gaussianization_alternates_pca_rotations_with_marginal_fits_of_the_given_size():
    """Every marginal map is ``from_data`` of the pushed training points with the kernels and bandwidth passed,
    and every "pca" rotation is the principal axes of the points it rotates."""
    data, kernels, bandwidth = curved_points(), 6, 1.3
    flow = fit_gaussianization(data, max_steps=3, patience=3, rotation="pca", kernels=kernels, bandwidth=bandwidth,
                               generator=torch.Generator().manual_seed(0))
    assert flow.report.steps >= 1
    assert not any(module.training for module in flow.modules())  # returned in eval() mode, as documented
    layers = flow.transform.layers
    states = pushed_through(flow, training_part(data, 0))
    for i, (layer, x) in enumerate(zip(layers, states)):
        if i % 2 == 0:
            expected = MarginalGaussianization.from_data(x, kernels, bandwidth=bandwidth).state_dict()
            for name, value in layer.state_dict().items():
                torch.testing.assert_close(value, expected[name], atol=1e-12, rtol=1e-12, msg=f"layer {i} {name}")
        else:
            torch.testing.assert_close(layer.matrix, pca_rotation(x).matrix, atol=1e-12, rtol=0)
