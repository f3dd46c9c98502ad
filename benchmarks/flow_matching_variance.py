"""Variance of the flow-matching gradient with independent and with stratified path times.

    python benchmarks/flow_matching_variance.py [--densities two_moons eight_gaussians] [--pretrain 300]
                                                [--batch 4096] [--draws 100]

For each density: FFJORD's toy field (concat-squash 64-64-64, tanh, T = 0.5) is first trained ``--pretrain``
steps by flow matching (batch 4096, lr 2e-2, independent times), so the variance is read near where training
spends its time, not at the random start. Then ``--draws`` fresh batches give ``--draws`` gradients of the loss
for each way of drawing the times (``FlowMatching(times=...)``); the table gives the summed per-parameter
variance of those gradients, the ratio stratified / uniform, and the norm of the mean gradient for scale.
With a ratio near 1 the time draws are not what makes the gradient noisy: the pairs (x₀, z) are.
"""
from __future__ import annotations

import argparse

import torch

import ctflows
from ctflows.continuous.matching import TIME_SAMPLINGS, FlowMatching, flow_matching_loss
from ctflows.continuous.single import split_at_cnf


def gradient_moments(field: torch.nn.Module, density, times: str, batch: int, draws: int) -> tuple[torch.Tensor, float]:
    """Mean gradient ``[P]`` over ``draws`` batches of ``batch`` and the summed variance of its entries."""
    params = list(field.parameters())
    gradients = []
    for _ in range(draws):
        x, z = density.sample(batch), torch.randn(batch, 2)
        loss = flow_matching_loss(field, x, z, end_time=0.5, times=times)
        gradients.append(torch.cat([g.flatten() for g in torch.autograd.grad(loss, params)]))
    stacked = torch.stack(gradients)
    return stacked.mean(0), float(stacked.var(0).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--densities", nargs="+", default=["two_moons", "eight_gaussians"])
    parser.add_argument("--pretrain", type=int, default=300, help="flow-matching steps before measuring")
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--draws", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("| density | pretrain steps | batch | variance, uniform | variance, stratified | ratio | mean-gradient norm |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in args.densities:
        torch.manual_seed(0)
        density = ctflows.get_density(name)
        flow = ctflows.cnf(2, hidden=(64, 64, 64), end_time=0.5)
        if args.pretrain:
            ctflows.fit(flow, density, steps=args.pretrain, batch_size=4096, lr=2e-2, seed=0, progress=False,
                        objective=FlowMatching("independent", times="uniform"))
        _, cnf = split_at_cnf(flow, "the variance benchmark")
        moments = {times: gradient_moments(cnf.field, density, times, args.batch, args.draws) for times in TIME_SAMPLINGS}
        (mean, uniform), (_, stratified) = moments["uniform"], moments["stratified"]
        print(f"| {name} | {args.pretrain} | {args.batch} | {uniform:.4g} | {stratified:.4g} | {stratified / uniform:.3f} "
              f"| {float(mean.norm()):.4g} |", flush=True)


if __name__ == "__main__":
    main()
