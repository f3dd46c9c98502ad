"""Rotations (log-det 0, inverse by transpose) and the whitening LULinear (zero mean, identity covariance)."""
import pytest
import torch

from ctflows.errors import ConfigurationError, DataError
from ctflows.nonparametric import Rotation, pca_rotation, random_rotation, whitening_layer
from ctflows.nonparametric.rotation import random_rotation


def test_random_and_pca_rotations_are_orthogonal_and_invert():
    torch.manual_seed(0)
    x = torch.randn(200, 3, dtype=torch.float64) @ torch.tensor([[2.0, 0.5, 0], [0, 1, 0.3], [0, 0, 0.2]], dtype=torch.float64)
    for turn in (random_rotation(3, generator=torch.Generator().manual_seed(1), dtype=torch.float64), pca_rotation(x)):
        q = turn.matrix
        torch.testing.assert_close(q @ q.T, torch.eye(3, dtype=torch.float64), atol=1e-12, rtol=0)
        z, logdet = turn(x)
        assert (logdet == 0).all()
        torch.testing.assert_close(turn.inverse(z)[0], x, atol=1e-12, rtol=0)
    z, _ = pca_rotation(x)(x)
    cov = torch.cov(z.T)
    torch.testing.assert_close(cov - torch.diag(torch.diagonal(cov)), torch.zeros(3, 3, dtype=torch.float64), atol=1e-10, rtol=0)
    assert (torch.diff(torch.diagonal(cov)) < 0).all()  # largest variance first


def test_rotation_refuses_a_non_orthogonal_matrix():
    with pytest.raises(ConfigurationError, match="orthogonal"):
        Rotation(torch.tensor([[1.0, 0.5], [0.0, 1.0]]))


def test_rotation_refuses_a_nearly_orthogonal_matrix_whose_logdet_is_not_zero() -> None:
    """(1 + 1e-4)·I has log|det| = 3e-4, not the 0 a Rotation reports (|QᵀQ - I| = 2e-4 > 1e-5); its rotation is
    a copy, so changing the matrix afterwards leaves the layer as it was."""
    with pytest.raises(ConfigurationError, match="not orthogonal"):
        Rotation((1 + 1e-4) * torch.eye(3, dtype=torch.float64))
    matrix = torch.eye(3, dtype=torch.float64)
    turn = Rotation(matrix)
    matrix.mul_(2.0)
    torch.testing.assert_close(turn.matrix, torch.eye(3, dtype=torch.float64), rtol=0, atol=0)


@pytest.mark.parametrize(
    "matrix",
    [
        torch.eye(3, dtype=torch.float64)[:, :2],  # orthonormal columns, but not square: no inverse
        torch.eye(3, dtype=torch.float64)[:2],
        torch.eye(2, dtype=torch.long),  # orthogonal, but an integer matrix cannot act on float points
        torch.ones(2, dtype=torch.float64),
    ],
    ids=["tall", "wide", "integer", "vector"],
)
def test_rotation_refuses_a_matrix_that_is_not_square_and_floating(matrix: torch.Tensor) -> None:
    """Only a square floating matrix is a rotation of R^D: anything else is a ConfigurationError, not a torch error."""
    with pytest.raises(ConfigurationError, match="square floating matrix"):
        Rotation(matrix)


def test_whitening_gives_zero_mean_identity_covariance_and_the_right_logdet():
    torch.manual_seed(0)
    a = torch.tensor([[2.0, 0.0], [1.5, 0.3]], dtype=torch.float64)
    x = torch.randn(500, 2, dtype=torch.float64) @ a.T + torch.tensor([3.0, -1.0], dtype=torch.float64)
    layer = whitening_layer(x)
    z, logdet = layer(x)
    torch.testing.assert_close(z.mean(dim=0), torch.zeros(2, dtype=torch.float64), atol=1e-10, rtol=0)
    torch.testing.assert_close(torch.cov(z.T), torch.eye(2, dtype=torch.float64), atol=1e-10, rtol=0)
    torch.testing.assert_close(logdet, torch.full_like(logdet, -0.5 * float(torch.logdet(torch.cov(x.T)))), atol=1e-10, rtol=0)
    torch.testing.assert_close(layer.inverse(z)[0], x, atol=1e-10, rtol=0)


@pytest.mark.parametrize("scale", [1e-5, 1e5])
def test_whitening_is_scale_free(scale: float) -> None:
    """Rescaled data whitens to the same points: the singularity test compares eigenvalues with the largest one, so
    small units (covariance eigenvalues near 1e-10) are not taken for a degenerate covariance."""
    torch.manual_seed(0)
    x = torch.randn(300, 2, dtype=torch.float64) @ torch.tensor([[1.0, 0.0], [0.6, 0.8]], dtype=torch.float64)
    z = whitening_layer(x)(x)[0]
    torch.testing.assert_close(whitening_layer(scale * x)(scale * x)[0], z, atol=1e-9, rtol=0)


def test_whitening_refuses_degenerate_data():
    line = torch.linspace(0, 1, 50, dtype=torch.float64).unsqueeze(1) * torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    with pytest.raises(DataError, match="singular"):
        whitening_layer(line)
    with pytest.raises(DataError, match="more than D"):
        whitening_layer(torch.randn(2, 2, dtype=torch.float64))


def test_random_rotations_are_haar_distributed():
    # Under the Haar measure on O(2) each entry has mean 0 and the determinant is +1 or -1 with equal odds.
    # QR without the sign fix gives det -1 and a negative Q[0, 0] every time.

    g = torch.Generator().manual_seed(0)
    qs = torch.stack([random_rotation(2, generator=g, dtype=torch.float64).matrix for _ in range(400)])
    # each entry has variance 1/2: the mean of 400 has standard error 0.035; 4 of them allowed
    assert float(qs.mean(0).abs().max()) < 0.14
    positive = float((torch.linalg.det(qs) > 0).double().mean())
    assert 0.4 < positive < 0.6  # binomial SE 0.025


def test_a_seeded_random_rotation_ignores_the_global_random_state():
    """The generator alone decides the rotation, so a seeded fit draws the same rotations in any session."""
    torch.manual_seed(1)
    first = random_rotation(3, generator=torch.Generator().manual_seed(4), dtype=torch.float64).matrix
    torch.manual_seed(2)
    assert torch.equal(random_rotation(3, generator=torch.Generator().manual_seed(4), dtype=torch.float64).matrix, first)
