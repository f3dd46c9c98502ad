"""A builder's seed fixes the model's initial weights and leaves torch's global generator as it was."""
import pytest
import torch

from ctflows.models import cnf, maf, nice, realnvp, resflow, spline


@pytest.mark.parametrize("builder", [realnvp, nice, spline, resflow, cnf, maf], ids=lambda b: b.__name__)
@pytest.mark.parametrize("mixing", [None, "random"])
def test_seed_fixes_the_initialisation_and_leaves_the_global_generator_alone(builder, mixing):
    options = {} if mixing is None or builder in (resflow, cnf, maf) else {"mixing": mixing}
    torch.manual_seed(5)
    expected_next = torch.rand(1)
    torch.manual_seed(5)
    a = builder(2, blocks=2, hidden=(8,), seed=3, **options)
    assert torch.equal(torch.rand(1), expected_next)
    torch.manual_seed(6)  # another global state: the seed alone decides
    b = builder(2, blocks=2, hidden=(8,), seed=3, **options)
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), name
    c = builder(2, blocks=2, hidden=(8,), seed=4, **options)
    assert any(not torch.equal(p, q) for p, q in zip(a.state_dict().values(), c.state_dict().values()))
