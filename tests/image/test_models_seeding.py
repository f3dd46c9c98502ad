"""The image builders' seed fixes the initial weights and leaves torch's global generator as it was."""
import pytest
import torch

from ctflows.errors import ConfigurationError
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


@pytest.mark.parametrize("seed", [3.5, True, "3", -1, 2**63])
@pytest.mark.parametrize("builder", [multiscale_cnf, multiscale_glow], ids=lambda b: b.__name__)
def test_the_image_builders_refuse_a_seed_that_is_not_a_whole_number_in_range(builder, seed):
    # torch would read 3.5 as 3 and True as 1 without a word; the message is the one fit and the other builders give
    with pytest.raises(ConfigurationError, match=rf"^{builder.__name__}: seed must be a whole number from 0 to 2\^63 - 1"):
        builder((1, 4, 4), levels=1, seed=seed)
