"""Variance of the flow-matching gradient with independent and with stratified path times.

    python benchmarks/flow_matching_variance.py [--densities two_moons eight_gaussians] [--pretrain 300]
                                                [--batch 4096] [--draws 100]

For each density: FFJORD's toy field (``benchmarks/cnf_common.FFJORD_TOY_MODEL``: concat-squash 64-64-64, tanh,
T = 0.5) is first trained ``--pretrain`` steps by flow matching (batch 4096, lr 2e-2, independent times), so the
variance is read near where training spends its time, not at the random start. Then ``--draws`` fresh batches
of pairs (x₀, z) each give one gradient of the loss per way of drawing the times (``FlowMatching(times=...)``),
the same pairs for both. The table gives the summed per-parameter variance of those gradients, the ratio
stratified / uniform with a bootstrap standard error over the draws, and the norm of the mean gradient for
scale. With a ratio near 1 the time draws are not what makes the gradient noisy: the pairs (x₀, z) are.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ctflows  # noqa: E402
from ctflows.cli.arguments import OneLineParser, int_at_least, non_negative_int, positive_int  # noqa: E402
from cnf_common import FFJORD_TOY_MODEL, build_flow  # noqa: E402
from ctflows.continuous.matching import TIME_SAMPLINGS, FlowMatching, flow_matching_loss  # noqa: E402
from ctflows.continuous.single import split_at_cnf  # noqa: E402

BOOTSTRAP = 200


def paired_gradients(field: torch.nn.Module, density, batch: int, draws: int) -> dict[str, torch.Tensor]:
    """``{times: [draws, P]}``: the loss gradient on ``draws`` batches, each batch's (x₀, z) shared by both samplings."""
    params = list(field.parameters())
    gradients: dict[str, list[torch.Tensor]] = {times: [] for times in TIME_SAMPLINGS}
    for _ in range(draws):
        x, z = density.sample(batch), torch.randn(batch, 2)
        for times in TIME_SAMPLINGS:
            loss = flow_matching_loss(field, x, z, end_time=FFJORD_TOY_MODEL.end_time, times=times)
            gradients[times].append(torch.cat([g.flatten() for g in torch.autograd.grad(loss, params)]))
    return {times: torch.stack(rows) for times, rows in gradients.items()}


def summed_variance(gradients: torch.Tensor) -> float:
    """The per-parameter variances of ``gradients [draws, P]`` over the draws, summed."""
    return float(gradients.var(0).sum())


def ratio_error(gradients: dict[str, torch.Tensor], generator: torch.Generator) -> float:
    """Standard error of the ratio of summed variances, stratified / uniform, by resampling the draws (bootstrap)."""
    draws = len(gradients["uniform"])
    resampled = []
    for _ in range(BOOTSTRAP):
        rows = torch.randint(draws, (draws,), generator=generator)
        resampled.append(summed_variance(gradients["stratified"][rows]) / summed_variance(gradients["uniform"][rows]))
    return float(torch.tensor(resampled).std())


def main() -> None:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--densities", nargs="+", default=["two_moons", "eight_gaussians"])
    parser.add_argument("--pretrain", type=non_negative_int, default=300, help="flow-matching steps before measuring")
    parser.add_argument("--batch", type=positive_int, default=4096)
    parser.add_argument("--draws", type=int_at_least(2), default=100, help="gradient draws (a variance needs two)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("| density | pretrain steps | batch | variance, uniform | variance, stratified | ratio | mean-gradient norm |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in args.densities:
        torch.manual_seed(0)
        density = ctflows.get_density(name)
        flow = build_flow(2, FFJORD_TOY_MODEL, adjoint=False, divergence="exact")
        if args.pretrain:
            ctflows.fit(flow, density, steps=args.pretrain, batch_size=4096, lr=2e-2, seed=0, progress=False,
                        objective=FlowMatching("independent", times="uniform"))
        _, cnf = split_at_cnf(flow, "the variance benchmark")
        gradients = paired_gradients(cnf.field, density, args.batch, args.draws)
        uniform, stratified = summed_variance(gradients["uniform"]), summed_variance(gradients["stratified"])
        error = ratio_error(gradients, torch.Generator().manual_seed(0))
        print(f"| {name} | {args.pretrain} | {args.batch} | {uniform:.4g} | {stratified:.4g} "
              f"| {stratified / uniform:.3f} ± {error:.3f} | {float(gradients['uniform'].mean(0).norm()):.4g} |", flush=True)


if __name__ == "__main__":
    main()
