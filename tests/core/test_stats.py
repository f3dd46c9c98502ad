"""Gathered stats are each leaf layer's own, counted once: against a sum over the layers read one by one."""
import torch

from ctflows.continuous import CNF, ConcatSquashMLP
from ctflows.core import Flow, StandardNormal
from ctflows.core.stats import count_stats, detach_regularization_terms, layer_stats, regularization_terms
from ctflows.core.transform import Chain, Inverse
from ctflows.linear import ActNorm


def cnf(seed: int) -> CNF:
    torch.manual_seed(seed)
    field = ConcatSquashMLP(2, (8,), activation="tanh", init_scale=1.0)
    return CNF(field, adjoint=False, atol=1e-4, rtol=1e-4, regularization=("kinetic_energy", "jacobian_frobenius"))


def test_counts_and_regularizers_are_the_sums_over_the_leaf_layers_once_each():
    first, second, third = cnf(0), cnf(1), cnf(2)
    # A nested chain and an inverse: both only pass their parts' stats on.
    flow = Flow(Chain(first, ActNorm(2), Chain(Inverse(second), third)), StandardNormal(2))
    flow.train()
    flow.log_prob(torch.randn(16, 2, generator=torch.Generator().manual_seed(3)))
    leaves = (first, second, third)
    counts = count_stats(flow)
    assert counts["nfe_forward"] == sum(layer.stats["nfe_forward"] for layer in leaves) > 0
    assert counts["nfe_backward"] == 0
    assert "logdet_exact" not in counts  # a flag, not a count
    terms = regularization_terms(flow)
    assert set(terms) == {"kinetic_energy", "jacobian_frobenius"}
    for name, total in terms.items():
        torch.testing.assert_close(total, sum(layer.stats["regularization"][name] for layer in leaves))
    by_path = layer_stats(flow)
    paths = {module: name for name, module in flow.named_modules()}
    assert set(by_path) == {paths[layer] for layer in leaves}  # the ActNorm reports nothing; chains pass through
    for layer in leaves:
        assert by_path[paths[layer]] is layer.stats


def test_integer_counts_of_any_layer_are_added_and_flags_left_out():
    class Counting(ActNorm):
        pass

    a, b = Counting(2), Counting(2)
    a.stats = {"iterations": 3, "converged": True, "nfe_forward": 2}
    b.stats = {"iterations": 4, "converged": False}
    flow = Flow(Chain(a, b), StandardNormal(2))
    assert count_stats(flow) == {"iterations": 7, "nfe_forward": 2}


def test_detaching_the_regularizers_keeps_their_values_and_drops_their_graph():
    """After a step the terms keep their values but no longer hold the graph; layers without terms are left alone."""
    class Reporting(ActNorm):
        pass

    a, b = Reporting(2), Reporting(2)
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    a.stats = {"regularization": {"kinetic_energy": (w**2).sum()}, "nfe_forward": 3}
    b.stats = {"iterations": 4}
    flow = Flow(Chain(a, Inverse(b)), StandardNormal(2))
    detach_regularization_terms(flow)
    term = regularization_terms(flow)["kinetic_energy"]
    assert not term.requires_grad and float(term) == 5.0
    assert a.stats["nfe_forward"] == 3 and b.stats == {"iterations": 4}


def test_a_flows_stats_are_keyed_by_the_index_of_each_reporting_layer_through_inverses():
    """Flow.stats() maps a chain's layer index to that layer's stats (an Inverse passing its layer's on); silent
    layers are left out, and a nested chain nests its own indices."""

    class Reporting(ActNorm):
        pass

    quiet, inner, nested = ActNorm(2), Reporting(2), Reporting(2)
    inner.stats, nested.stats = {"iterations": 2}, {"nfe_forward": 5}
    flow = Flow(Chain(quiet, Inverse(inner), Chain(ActNorm(2), nested)), StandardNormal(2))
    assert flow.stats() == {"1": {"iterations": 2}, "2": {"1": {"nfe_forward": 5}}}
    assert flow.stats()["1"] is inner.stats
