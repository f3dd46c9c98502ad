"""The image builders' seed fixes the initial weights and leaves torch's global generator as it was."""
import pytest
import torch

from ctflows.image import multiscale_cnf, multiscale_glow


@pytest.mark.parametrize("builder", [multiscale_cnf, multiscale_glow], ids=lambda b: b.__name__)
def test_the_image_builders_seed_their_weights_the_same_way(builder):
    options = {"hidden": (4,)} if builder is multiscale_cnf else {"hidden": 4, "steps": 1}
    torch.manual_seed(5)
    expected_next = torch.rand(1)
    torch.manual_seed(5)
    a = builder((1, 4, 4), levels=1, seed=3, **options)
    assert torch.equal(torch.rand(1), expected_next)
    b = builder((1, 4, 4), levels=1, seed=3, **options)
    c = builder((1, 4, 4), levels=1, seed=4, **options)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert any(not torch.equal(p, q) for p, q in zip(a.state_dict().values(), c.state_dict().values()))
