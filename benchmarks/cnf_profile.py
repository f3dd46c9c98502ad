"""Where a CNF training iteration spends its time: forward solve vs adjoint backward solve, and the top ops.

    python benchmarks/cnf_profile.py [--warm-iters 60] [--iters 20] [--compile] [--adjoint ctflows|torchdiffeq] [--top 12]

FFJORD's toy configuration (``benchmarks/cnf_common.build_flow`` with ``benchmarks/cnf.py``'s defaults:
concat-squash 64-64-64, tanh, dopri5, atol = rtol = 1e-5, T = 0.5 learned, adjoint, exact divergence, Adam
lr 1e-3, batch 512) on eight Gaussians, one thread. The model first trains ``--warm-iters`` iterations so the
solver takes more than its minimum of steps; then ``--iters`` iterations are timed in two parts (the
``log_prob`` forward solve; ``backward()`` with the optimizer step) and profiled with ``torch.profiler``.
It also times the right-hand side alone (no solver) to split the iteration into the field's own work and
the rest. ``--compile`` turns on ``CNF(compile_field=True)`` (the field's ``forward_with_jvp`` under ``torch.compile``; the
first iterations, which compile, are timed apart and not in the per-iteration numbers). Prints Markdown.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import ctflows  # noqa: E402
from ctflows.cli.arguments import OneLineParser, non_negative_int, positive_int  # noqa: E402
from cnf_common import FFJORD_TOY_MODEL, build_flow, machine_line  # noqa: E402
from ctflows.core.stats import count_stats  # noqa: E402


def timed_step(flow, opt, x) -> tuple[float, float]:
    """One likelihood step; returns (seconds in the forward solve, seconds in backward + optimizer step)."""
    tick = time.perf_counter()
    flow.train()
    nll = -flow.log_prob(x).mean()
    middle = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    nll.backward()
    opt.step()
    return middle - tick, time.perf_counter() - middle


def field_seconds(flow, x, repeats: int = 200) -> tuple[float, float]:
    """Seconds per right-hand-side evaluation outside the solver: ``(no-grad, with its vector-Jacobian product)``.

    The same ``AugmentedDynamics`` the solve calls (field, exact divergence, compiled or not), on ``x [B, 2]``
    at t = T/2; the second number is one evaluation of ctflows' adjoint solve: the value and its
    vector-Jacobian product with respect to x and the field's parameters (``vector_jacobian_product``).
    """
    cnf = flow.transform.layers[0]
    params = tuple(p for p in cnf.field.parameters())
    t = torch.as_tensor(cnf.end_time).detach() / 2
    state = (x, torch.zeros(x.shape[0]))  # (x, ℓ): the adjoint's cotangents are ones shaped like (v, div)
    dynamics, _ = cnf._dynamics(x, None, inverse=False)

    def plain() -> None:
        with torch.no_grad():
            dynamics(t, state)

    def with_vjp() -> None:
        dynamics.vector_jacobian_product(t, x, [torch.ones_like(s) for s in state], params)

    seconds = []
    for call in (plain, with_vjp):
        for _ in range(repeats // 10):
            call()
        tick = time.perf_counter()
        for _ in range(repeats):
            call()
        seconds.append((time.perf_counter() - tick) / repeats)
    return seconds[0], seconds[1]


def main() -> None:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warm-iters", type=non_negative_int, default=60)
    parser.add_argument("--iters", type=positive_int, default=20)
    parser.add_argument("--batch", type=positive_int, default=512)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--adjoint", choices=["ctflows", "torchdiffeq"], default="ctflows",
                        help="CNF(adjoint=True), ctflows' own, or adjoint='torchdiffeq' (odeint_adjoint)")
    parser.add_argument("--top", type=positive_int, default=12)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    density = ctflows.get_density("eight_gaussians")
    generator = torch.Generator().manual_seed(0)
    flow = build_flow(2, argparse.Namespace(**vars(FFJORD_TOY_MODEL), compile_field=args.compile), adjoint=True, divergence="exact")
    flow.transform.layers[0].adjoint = True if args.adjoint == "ctflows" else "torchdiffeq"
    compile_seconds = 0.0
    opt = torch.optim.Adam(flow.parameters(), lr=1e-3)
    for i in range(args.warm_iters):
        tick = time.perf_counter()
        timed_step(flow, opt, density.sample(args.batch, generator=generator))
        if i < 3:  # the first calls compile (both grad modes)
            compile_seconds += time.perf_counter() - tick
    forward, backward, nfe = [], [], []
    for _ in range(args.iters):
        f, b = timed_step(flow, opt, density.sample(args.batch, generator=generator))
        forward.append(f)
        backward.append(b)
        counts = count_stats(flow)
        nfe.append((counts["nfe_forward"], counts["nfe_backward"]))
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(args.iters):
            timed_step(flow, opt, density.sample(args.batch, generator=generator))
    total = sum(e.self_cpu_time_total for e in prof.key_averages())
    fwd, bwd = statistics.mean(forward), statistics.mean(backward)
    nfe_f, nfe_b = (statistics.mean(n[k] for n in nfe) for k in (0, 1))
    plain, with_vjp = field_seconds(flow, density.sample(args.batch, generator=generator))
    print(f"{'torch.compile of the field' if args.compile else 'eager'}, {args.adjoint}'s adjoint; after {args.warm_iters} training iterations; "
          f"mean of {args.iters}. {machine_line('cpu')}.\n")
    if args.compile:
        print(f"First 3 iterations (compiling): {compile_seconds:.1f} s\n")
    print("| part | s / iter | share | NFE |\n| --- | ---: | ---: | ---: |")
    print(f"| forward solve (`log_prob`) | {fwd:.4f} | {fwd / (fwd + bwd):.0%} | {nfe_f:.1f} |")
    print(f"| backward (adjoint solve) + Adam step | {bwd:.4f} | {bwd / (fwd + bwd):.0%} | {nfe_b:.1f} |")
    print(f"| total | {fwd + bwd:.4f} | | |\n")
    inside = nfe_f * plain + nfe_b * with_vjp
    if args.adjoint == "ctflows":  # the product timed is the one ctflows' adjoint evaluates
        print(f"The right-hand side alone, outside the solver (batch {args.batch}): {plain * 1e3:.3f} ms per evaluation, "
              f"{with_vjp * 1e3:.3f} ms with its vector-Jacobian product; at this iteration's NFE that is "
              f"{inside:.4f} s, {inside / (fwd + bwd):.0%} of the iteration (the rest: solver, adjoint bookkeeping, "
              "optimizer).\n")
    print(f"Top {args.top} ops by self CPU time under torch.profiler (which adds its own overhead):\n")
    print("| op | self CPU share | calls / iter |\n| --- | ---: | ---: |")
    for e in sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[: args.top]:
        print(f"| `{e.key}` | {e.self_cpu_time_total / total:.1%} | {e.count / args.iters:.0f} |")


if __name__ == "__main__":
    main()
