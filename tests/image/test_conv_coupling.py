"""ConvAffineCoupling: for an odd channel count, parities 0 and 1 swap roles (what one conditions on, the other
transforms); glow_step keeps the parity it is given; a new coupling is the identity; its log-scale stays bounded."""
from __future__ import annotations

from typing import Callable

import pytest
import torch

from ctflows.image import ConvAffineCoupling, glow_step

# (shape, hidden, parity) -> the coupling: built directly, or as the last layer of a Glow step
COUPLINGS: dict[str, Callable[[tuple[int, int, int], int, int], ConvAffineCoupling]] = {
    "direct": lambda shape, hidden, parity: ConvAffineCoupling(shape, hidden, parity=parity),
    "in_glow_step": lambda shape, hidden, parity: glow_step(shape, hidden, parity=parity).layers[-1],
}


def changed_channels(layer: ConvAffineCoupling, x: torch.Tensor) -> list[int]:
    z, _ = layer(x)
    return [c for c in range(x.shape[1]) if not torch.equal(z[:, c], x[:, c])]


@pytest.mark.parametrize("coupling", COUPLINGS.values(), ids=COUPLINGS.keys())
def test_parities_transform_complementary_channels_for_odd_c(coupling: Callable[..., ConvAffineCoupling]) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 2, 2, dtype=torch.float64)
    transformed = []
    for parity in (0, 1):
        layer = coupling((3, 2, 2), 8, parity).double()
        with torch.no_grad():
            for p in layer.parameters():
                p.add_(0.3 * torch.randn_like(p))
        transformed.append(changed_channels(layer, x))
    # parity 0: the first C // 2 channels condition, the rest change; parity 1: the mirror image.
    assert transformed[0] == [1, 2] and transformed[1] == [0], transformed


@pytest.mark.parametrize("parity", [0, 1])
def test_a_new_coupling_is_the_identity(parity: int) -> None:
    """The last convolution starts at zero, so a fresh layer (and a fresh Glow step's coupling) maps x to x, log-det 0."""
    torch.manual_seed(0)
    x = torch.randn(4, 5, 2, 2)
    for coupling in COUPLINGS.values():
        z, logdet = coupling((5, 2, 2), 8, parity)(x)
        assert torch.equal(z, x) and torch.equal(logdet, torch.zeros(4))


def test_log_scale_stays_within_the_scale_bound() -> None:
    """|s| <= b however large the network's output: on 1×1 images with 2 channels the log-det is the one s."""
    bound, generator = 0.5, torch.Generator().manual_seed(0)
    layer = ConvAffineCoupling((2, 1, 1), 8, scale_bound=bound).double()
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(10 * torch.randn(p.shape, generator=generator, dtype=p.dtype))
        _, logdet = layer(10 * torch.randn(64, 2, 1, 1, generator=generator, dtype=torch.float64))
    assert float(logdet.abs().max()) <= bound
    assert float(logdet.abs().max()) > 0.9 * bound  # the network's output is far past the bound
