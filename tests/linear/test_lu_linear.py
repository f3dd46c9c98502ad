"""LULinear: the start is a rotation (or the identity), and the inverse undoes W = P L U for any pivoting P."""
import torch

from ctflows.linear import LULinear


def test_random_start_is_an_orthogonal_matrix_and_identity_start_is_the_identity():
    # The LU factors must multiply back to the QR draw, signs of U's diagonal included: W Wᵀ = I, |det W| = 1.
    for seed in range(5):
        layer = LULinear(6, generator=torch.Generator().manual_seed(seed)).double()
        w = layer.weight().detach()
        torch.testing.assert_close(w @ w.T, torch.eye(6, dtype=torch.float64), atol=1e-6, rtol=0)
        assert float(layer(torch.zeros(1, 6, dtype=torch.float64))[1].detach().abs()) < 1e-6
    identity = LULinear(4, identity_init=True).double()
    torch.testing.assert_close(identity.weight().detach(), torch.eye(4, dtype=torch.float64), atol=0, rtol=0)


def test_inverse_undoes_a_non_symmetric_pivoting_permutation():
    # With a permutation P that is not its own inverse (a cycle, here from seed 0 in 6-D), solving P L U x = z - b
    # needs Pᵀ (z - b); a 3-D layer's P may happen to be symmetric and hide a transposed one.
    layer = LULinear(6, generator=torch.Generator().manual_seed(0)).double()
    assert not torch.equal(layer.permutation, layer.permutation.T)
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1), dtype=p.dtype))
    x = torch.randn(9, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    z, logdet = layer(x)
    torch.testing.assert_close(z, x @ layer.weight().detach().T + layer.bias.detach(), atol=1e-12, rtol=0)
    x_back, logdet_inv = layer.inverse(z)
    torch.testing.assert_close(x_back, x, atol=1e-10, rtol=0)
    torch.testing.assert_close(logdet_inv, -logdet, atol=1e-12, rtol=0)
    torch.testing.assert_close(logdet[0], torch.linalg.slogdet(layer.weight().detach()).logabsdet, atol=1e-12, rtol=0)
