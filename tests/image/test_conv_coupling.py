"""ConvAffineCoupling: for an odd channel count, parities 0 and 1 swap roles (what one conditions on, the other transforms)."""
from __future__ import annotations

import torch

from ctflows.image import ConvAffineCoupling


def changed_channels(layer: ConvAffineCoupling, x: torch.Tensor) -> list[int]:
    z, _ = layer(x)
    return [c for c in range(x.shape[1]) if not torch.equal(z[:, c], x[:, c])]


def test_parities_transform_complementary_channels_for_odd_c() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 2, 2, dtype=torch.float64)
    transformed = []
    for parity in (0, 1):
        layer = ConvAffineCoupling((3, 2, 2), 8, parity=parity).double()
        with torch.no_grad():
            for p in layer.parameters():
                p.add_(0.3 * torch.randn_like(p))
        transformed.append(changed_channels(layer, x))
    # parity 0: the first C // 2 channels condition, the rest change; parity 1: the mirror image.
    assert transformed[0] == [1, 2] and transformed[1] == [0], transformed
