"""A builder's seed fixes the model's initial weights and leaves torch's global generator as it was."""
from typing import Callable

import pytest
import torch

from ctflows.core import Flow
from ctflows.linear import RandomPermutation
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


def random_permutations(flow: Flow) -> list[list[int]]:
    return [layer.permutation.tolist() for layer in flow.transform.layers if isinstance(layer, RandomPermutation)]


@pytest.mark.parametrize("builder", [realnvp, nice, spline], ids=lambda b: b.__name__)
def test_random_permutations_come_from_the_seed_or_else_from_the_global_generator(builder: Callable[..., Flow]) -> None:
    """With a seed the permutations are the seed's (same seed, same ones; other seeds, others); without one they are
    the global generator's, so they too change with ``torch.manual_seed``. (Of 6! = 720 permutations per block,
    three seeds all drawing the same two is not a chance worth considering; the draws are fixed by the seeds anyway.)"""
    def build(seed: int | None) -> list[list[int]]:
        return random_permutations(builder(6, blocks=2, hidden=(4,), mixing="random", seed=seed))

    seeded = [build(seed) for seed in (0, 0, 1, 2)]
    unseeded = []
    for global_seed in (0, 0, 1, 2):
        torch.manual_seed(global_seed)
        unseeded.append(build(None))
    for draws in (seeded, unseeded):
        assert len(draws[0]) == 2 and draws[0] == draws[1]
        assert any(other != draws[0] for other in draws[2:])


def test_a_seeded_build_reseeds_no_accelerator_generator(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fork covers the CPU generator only (the models are built on the CPU), so the seed must go to it alone:
    ``torch.manual_seed`` would also reseed every CUDA (MPS, XPU) generator, which the fork does not restore. On a
    machine without one, that reseeding can only be seen as the call that would do it (see the CUDA test below)."""
    calls: list[str] = []
    for module, name in (("cuda", "manual_seed_all"), ("cuda", "manual_seed"), ("mps", "manual_seed"), ("xpu", "manual_seed_all")):
        if hasattr(getattr(torch, module, None), name):  # torch >= 2.1 has cuda, not every version mps or xpu
            monkeypatch.setattr(getattr(torch, module), name, lambda seed, _name=f"torch.{module}.{name}": calls.append(_name))
    for builder in (realnvp, nice, spline, resflow, cnf, maf):
        builder(2, blocks=1, hidden=(4,), seed=3)
    assert calls == []


@pytest.mark.cuda
def test_a_seeded_build_leaves_the_cuda_generator_alone() -> None:
    """The draws on the GPU after a seeded build are those the CUDA generator would have given without it."""
    torch.cuda.manual_seed(5)
    expected = torch.rand(4, device="cuda")
    torch.cuda.manual_seed(5)
    realnvp(2, blocks=1, hidden=(4,), seed=3)
    assert torch.equal(torch.rand(4, device="cuda"), expected)


@pytest.mark.cuda
def test_a_seed_fixes_a_build_on_a_default_cuda_device() -> None:
    """Under ``torch.set_default_device("cuda")`` the weights are drawn on the GPU: the seed must fix them there."""
    torch.set_default_device("cuda")
    try:
        torch.cuda.manual_seed(5)
        expected = torch.rand(4)
        torch.cuda.manual_seed(5)
        first = realnvp(2, blocks=1, hidden=(4,), seed=3)
        assert torch.equal(torch.rand(4), expected)  # the CUDA generator is as it was
        torch.cuda.manual_seed(6)
        second = realnvp(2, blocks=1, hidden=(4,), seed=3)
    finally:
        torch.set_default_device("cpu")
    weights = list(zip(first.state_dict().values(), second.state_dict().values()))
    assert any(p.is_cuda for p, _ in weights) and all(torch.equal(p, q) for p, q in weights)
