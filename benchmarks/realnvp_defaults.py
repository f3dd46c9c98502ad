"""KL of the default RealNVP + default fit on a 2-D toy density, over several seeds.

    python benchmarks/realnvp_defaults.py [--data eight_gaussians] [--seeds 0 1 2 3 4 5] [--steps 2000]

Prints a Markdown table (seed, KL ± standard error, training seconds) and the range over seeds.
"""
from __future__ import annotations

import platform
import time

import torch

import ctflows
from ctflows.cli.arguments import OneLineParser, positive_int, seed_value


def main() -> None:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="eight_gaussians")
    parser.add_argument("--seeds", type=seed_value, nargs="+", default=[0, 1, 2, 3, 4, 5])
    parser.add_argument("--steps", type=positive_int, default=2000)
    parser.add_argument("--batch-size", type=positive_int, default=512)
    parser.add_argument("--threads", type=positive_int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    density = ctflows.get_density(args.data)
    print(f"RealNVP (8 blocks, hidden 64x64), default fit, {args.data}, {args.steps} steps at batch {args.batch_size}; "
          f"{platform.processor() or platform.machine()}, {args.threads} thread(s), torch {torch.__version__}\n")
    print("| seed | KL (nats) | training s |\n| --- | --- | --- |")
    kls = []
    for seed in args.seeds:
        torch.manual_seed(seed)
        flow = ctflows.realnvp(density.dim, seed=seed)
        start = time.perf_counter()
        ctflows.fit(flow, density, steps=args.steps, batch_size=args.batch_size, seed=seed, progress=False)
        seconds = time.perf_counter() - start
        result = ctflows.evaluate(flow, density, n=50000, seed=seed + 1000)
        kls.append(result["kl"])
        print(f"| {seed} | {result['kl']:.4f} ± {result['kl_se']:.4f} | {seconds:.1f} |", flush=True)
    print(f"\nKL over seeds: min {min(kls):.4f}, max {max(kls):.4f}, mean {sum(kls) / len(kls):.4f}")


if __name__ == "__main__":
    main()
