"""Model-level checks of the coupling-flow builders: they are proper densities and honour their options."""
import pytest
import torch

from ctflows.autoregressive import MaskedAutoregressive
from ctflows.errors import ConfigurationError
from ctflows.grid import integrate_2d
from ctflows.models import maf, nice, realnvp, spline


@pytest.mark.parametrize("builder", [realnvp, nice])
@pytest.mark.parametrize("mixing", ["reverse", "random", "lu"])
def test_untrained_model_density_integrates_to_one(builder, mixing):
    torch.manual_seed(0)
    flow = builder(2, blocks=4, hidden=(32, 32), mixing=mixing, seed=0).double()
    with torch.no_grad():
        flow.train()
        flow.log_prob(torch.randn(256, 2, dtype=torch.float64))  # ActNorm initialisation
        for p in flow.parameters():
            p.add_(0.05 * torch.randn_like(p))  # a generic, non-identity map
    flow.eval()
    assert integrate_2d(flow.log_prob, (-9, 9, -9, 9), n=500, dtype=torch.float64) == pytest.approx(1.0, abs=0.01)


def test_sample_and_log_prob_agree_with_log_prob():
    torch.manual_seed(0)
    flow = realnvp(3, blocks=3, hidden=(16,), seed=0).double()
    for p in flow.parameters():
        p.data.add_(0.2 * torch.randn_like(p))
    flow.eval()
    x, log_prob = flow.sample_and_log_prob(50, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(log_prob, flow.log_prob(x), atol=1e-9, rtol=0)


def test_conditional_model_samples_follow_context():
    flow = realnvp(2, blocks=2, hidden=(16,), context_features=3, seed=0)
    assert flow.sample(5, context=torch.zeros(3)).shape == (5, 2)
    assert flow.sample(4, context=torch.zeros(4, 3)).shape == (4, 2)
    assert flow.log_prob(torch.randn(4, 2), torch.randn(4, 3)).shape == (4,)
    with pytest.raises(ValueError, match="context"):
        flow.sample(4, context=torch.zeros(3, 3))
    with pytest.raises(ValueError, match="conditional"):
        flow.sample(4)


def test_unknown_mixing_is_rejected():
    with pytest.raises(ConfigurationError, match="mixing"):
        realnvp(2, mixing="shuffle")


def test_maf_builder_is_a_density_and_alternates_its_orders():
    torch.manual_seed(0)
    flow = maf(2, blocks=3, hidden=(16, 16)).double()
    with torch.no_grad():
        flow.log_prob(torch.randn(256, 2, dtype=torch.float64))  # ActNorm initialisation
        for p in flow.parameters():
            p.add_(0.05 * torch.randn_like(p))
    flow.eval()
    assert integrate_2d(flow.log_prob, (-9, 9, -9, 9), n=500, dtype=torch.float64) == pytest.approx(1.0, abs=0.01)
    degrees = [m.made.degrees.tolist() for m in flow.modules() if isinstance(m, MaskedAutoregressive)]
    assert degrees == [[1, 2], [2, 1], [1, 2]]  # degree k+1 marks the k-th feature in the order


@pytest.mark.parametrize("builder", [realnvp, nice, spline], ids=lambda b: b.__name__)
@pytest.mark.parametrize("features", [3, 4, 5])
def test_every_feature_is_transformed_nonlinearly_somewhere(builder, features):
    # A feature only ever moved by affine layers has a Jacobian row that is the same at every point.
    flow = builder(features, blocks=4, hidden=(16,), seed=0).double()
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.5 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1), dtype=p.dtype))
    flow.eval()
    jacobians = [torch.autograd.functional.jacobian(lambda v: flow.transform(v.unsqueeze(0))[0][0], x)
                 for x in torch.randn(2, features, dtype=torch.float64, generator=torch.Generator().manual_seed(2))]
    varying = (jacobians[0] - jacobians[1]).abs().amax(dim=1) > 1e-6
    assert varying.all(), f"rows whose map is affine: {(~varying).nonzero().flatten().tolist()}"
