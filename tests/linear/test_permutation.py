"""Permutations: which feature goes where, the inverse of one that is not its own inverse, and seeding."""
import torch

from ctflows.linear import Permutation, RandomPermutation, ReversePermutation


def test_reverse_permutation_reverses_the_features_and_is_its_own_inverse():
    """Feature i goes to D-1-i with log-det 0, and the inverse is the same reversal."""
    layer = ReversePermutation(5)
    x = torch.arange(10.0).reshape(2, 5)
    z, logdet = layer(x)
    assert torch.equal(z, x.flip(1)) and not logdet.any()
    assert torch.equal(layer.inverse(x)[0], z)


def test_a_cycle_is_undone_by_its_inverse_not_by_itself():
    """[1, 2, 0] is not an involution: applying it twice is not the identity, its inverse is."""
    layer = Permutation([1, 2, 0])
    x = torch.tensor([[10.0, 20.0, 30.0]])
    z, _ = layer(x)
    assert z.tolist() == [[20.0, 30.0, 10.0]]
    back, logdet = layer.inverse(z)
    assert torch.equal(back, x) and not logdet.any()
    assert layer.inverse(x)[0].tolist() == [[30.0, 10.0, 20.0]]


def test_a_random_permutation_is_drawn_from_its_generator_alone():
    """The same seeded generator gives the same permutation whatever the global RNG's state."""
    drawn = []
    for global_seed in (0, 1):
        torch.manual_seed(global_seed)
        drawn.append(RandomPermutation(12, generator=torch.Generator().manual_seed(5)).permutation)
    assert torch.equal(drawn[0], drawn[1])
    assert torch.equal(drawn[0], torch.randperm(12, generator=torch.Generator().manual_seed(5)))
