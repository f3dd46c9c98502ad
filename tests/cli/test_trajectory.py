"""The plotting helpers' numbers: a CNF's density along t, its paths, per-layer paths, the running mean, the GIF."""
import numpy as np
import pytest
import torch
from PIL import Image

import ctflows
from ctflows.continuous.trajectory import cnf_path, density_along_t
from ctflows.grid import grid_2d
from ctflows.errors import ConfigurationError
from ctflows.viz import cnf_density_frames, density_animation, flow_paths, trajectory_panel
from ctflows.viz.density import plt
from ctflows.viz.loss import running_mean


@pytest.fixture(scope="module")
def cnf_flow():
    torch.manual_seed(0)
    flow = ctflows.cnf(2, hidden=(16, 16)).double()
    with torch.no_grad():  # a generic field, not the near-zero one a fresh model starts with
        for p in flow.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return flow.eval()


def test_density_along_t_runs_from_the_model_to_the_base(cnf_flow):
    x = torch.randn(64, 2, dtype=torch.float64)
    log_p = density_along_t(cnf_flow.transform.layers[0], cnf_flow.base.log_prob, x, [0.0, 0.5, 1.0])
    torch.testing.assert_close(log_p[0], cnf_flow.log_prob(x).detach(), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(log_p[2], cnf_flow.base.log_prob(x))


def test_animation_frames_start_at_the_model_density_with_fixed_layers_in_front(cnf_flow):
    scale = torch.tensor([3.0, 0.5], dtype=torch.float64)
    fronted = ctflows.Flow([ctflows.Standardization(torch.tensor([1.0, -2.0], dtype=torch.float64), scale),
                            cnf_flow.transform.layers[0]], cnf_flow.base).eval()
    bounds = (-8.0, 10.0, -5.0, 1.0)
    times, frames = cnf_density_frames(fronted, bounds, frames=3, n=12)
    points, area = grid_2d(bounds, 12, dtype=torch.float64)
    torch.testing.assert_close(frames[0].flatten(), fronted.log_prob(points).exp().detach(), atol=1e-8, rtol=1e-5)
    # Every frame is a density in data coordinates; the last is the base mapped back through the front.
    pushed_base = ctflows.Flow([ctflows.Standardization(torch.tensor([1.0, -2.0], dtype=torch.float64), scale)],
                               cnf_flow.base).log_prob(points).exp()
    torch.testing.assert_close(frames[-1].flatten(), pushed_base)


def test_density_at_a_learned_float32_end_time_is_the_base():
    # float(T) of a learned float32 T is not T in float32; s = 0.8 = T must still give the base density.
    cnf = ctflows.CNF(ctflows.continuous.TimeMLP(2, (8,)), end_time=0.8, learn_end_time=True)
    x = torch.randn(16, 2)
    log_p = density_along_t(cnf, ctflows.StandardNormal(2).log_prob, x, [0.0, 0.8])
    torch.testing.assert_close(log_p[1], ctflows.StandardNormal(2).log_prob(x))


def test_intermediate_density_integrates_to_one(cnf_flow):
    points, area = grid_2d((-7, 7, -7, 7), 80, dtype=torch.float64)
    log_p = density_along_t(cnf_flow.transform.layers[0], cnf_flow.base.log_prob, points, [0.4])
    assert float(log_p.exp().sum() * area) == pytest.approx(1.0, abs=5e-3)


def test_density_along_t_in_small_batches_is_the_same_as_in_one(cnf_flow):
    """batch_size only bounds the memory: points solved in chunks (the last one short) keep their densities and order."""
    x = torch.randn(11, 2, dtype=torch.float64)
    layer = cnf_flow.transform.layers[0]
    whole = density_along_t(layer, cnf_flow.base.log_prob, x, [0.0, 0.5])
    chunked = density_along_t(layer, cnf_flow.base.log_prob, x, [0.0, 0.5], batch_size=4)
    torch.testing.assert_close(chunked, whole, atol=1e-5, rtol=1e-5)  # each chunk's solve chooses its own steps


def test_cnf_path_ends_where_the_layer_maps_and_flow_paths_follow_discrete_layers(cnf_flow):
    x = torch.randn(32, 2, dtype=torch.float64)
    layer = cnf_flow.transform.layers[0]
    path = cnf_path(layer, x, torch.linspace(0, 1, 5))
    assert path.shape == (5, 32, 2)
    torch.testing.assert_close(path[0], x)
    torch.testing.assert_close(path[-1], layer(x)[0].detach(), atol=1e-6, rtol=1e-6)
    # Back from the end returns to the start: the same ODE, run T -> 0.
    torch.testing.assert_close(cnf_path(layer, path[-1], torch.linspace(1, 0, 3))[-1], x, atol=1e-4, rtol=1e-4)
    realnvp = ctflows.realnvp(2, blocks=2, hidden=(8,), seed=0).double().eval()
    rows = flow_paths(realnvp, x)
    assert rows.shape[0] == 2  # discrete layers jump: data, then base
    torch.testing.assert_close(rows[-1], realnvp.transform(x)[0].detach())
    hybrid = ctflows.Flow([ctflows.ActNorm(2), layer], ctflows.StandardNormal(2)).double().eval()
    rows = flow_paths(hybrid, x, cnf_steps=4)
    assert rows.shape[0] == 1 + 1 + 4  # x, after ActNorm, four CNF times
    torch.testing.assert_close(rows[-1], hybrid.transform(x)[0].detach(), atol=1e-6, rtol=1e-6)


def test_cnf_path_of_a_conditional_cnf_follows_its_context():
    """A conditional CNF's path at a context ends where the layer maps the points at that context."""
    torch.manual_seed(0)
    layer = ctflows.CNF(ctflows.continuous.TimeMLP(2, (8,), context_features=1, init_scale=1.0)).double().eval()
    x, context = torch.randn(16, 2, dtype=torch.float64), torch.randn(16, 1, dtype=torch.float64)
    path = cnf_path(layer, x, [0.0, 1.0], context)
    torch.testing.assert_close(path[-1], layer(x, context)[0].detach(), atol=1e-6, rtol=1e-6)


def test_paths_and_densities_of_a_fixed_step_cnf_take_the_layers_own_steps():
    """On rk4 with step_size 0.25, a path asked only for t = 0 and 1 still takes the layer's four steps, so it
    ends where the layer maps to rounding, and the density at s = 0 is the flow's log-density to rounding."""
    torch.manual_seed(0)
    layer = ctflows.CNF(ctflows.continuous.TimeMLP(2, (8,), init_scale=1.0), method="rk4", step_size=0.25).double().eval()
    flow = ctflows.Flow(layer, ctflows.StandardNormal(2))
    x = torch.randn(32, 2, dtype=torch.float64)
    torch.testing.assert_close(cnf_path(layer, x, [0.0, 1.0])[-1], layer(x)[0].detach(), atol=1e-12, rtol=1e-12)
    log_p = density_along_t(layer, flow.base.log_prob, x, [0.0])
    torch.testing.assert_close(log_p[0], flow.log_prob(x).detach(), atol=1e-12, rtol=1e-12)


def test_flow_paths_leave_a_model_in_training_mode_untouched():
    # In train() mode a fresh ActNorm would initialise itself on the plotted points.
    flow = ctflows.Flow([ctflows.ActNorm(2), ctflows.ReversePermutation(2)], ctflows.StandardNormal(2)).train()
    x = torch.randn(16, 2) * 5 + 3
    paths = flow_paths(flow, x)
    assert not bool(flow.transform.layers[0].initialized) and flow.training
    torch.testing.assert_close(paths[-1], x.flip(1))  # an uninitialised ActNorm is the identity
    _, draw = trajectory_panel("paths", paths.clone().requires_grad_(True))  # a tensor with grad plots too
    fig, ax = plt.subplots()
    draw(ax)
    plt.close(fig)


def test_grid_refuses_reversed_bounds():
    with pytest.raises(ConfigurationError, match="x_min < x_max"):
        grid_2d((8, -8, -8, 8), 10)


def test_running_mean_matches_the_windowed_mean_and_skips_nan():
    values = np.array([1.0, 3.0, np.nan, 5.0, 7.0, 9.0])
    smooth = running_mean(values, 3)
    expected = [np.nanmean(values[max(0, k - 2): k + 1]) for k in range(len(values))]
    np.testing.assert_allclose(smooth, expected)


def test_density_animation_writes_one_frame_per_time(tmp_path):
    times = torch.linspace(0, 1, 4)
    frames = torch.stack([torch.full((8, 8), float(k + 1)) * torch.eye(8).roll(k, 0) for k in range(4)])
    path = density_animation(times, frames, (-1, 1, -1, 1), tmp_path / "a.gif")
    assert Image.open(path).n_frames >= 4
