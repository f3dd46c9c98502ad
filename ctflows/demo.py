"""What ``make demo`` runs: train a RealNVP flow on a built-in 2-D density, report KL, save a figure.

    python -m ctflows.demo [--data eight_gaussians] [--steps 2000] [--out demo-output]

Prints KL(p‖q) to the true density with its Monte Carlo standard error and writes ``DIR/demo.png``
(true density | learned density | samples) and ``DIR/realnvp.pt`` (a checkpoint).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from ctflows.data import get_density
from ctflows.models import realnvp
from ctflows.training import evaluate, fit, save
from ctflows.viz import density_panel, sample_panel, side_by_side

BOUNDS = (-4.5, 4.5, -4.5, 4.5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="eight_gaussians", help="a built-in 2-D density")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="demo-output")
    args = parser.parse_args(argv)

    # Small models run faster on one thread than on two competing ones (see README, "Measured").
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    density = get_density(args.data)
    if density.dim != 2:
        parser.error(f"the demo plots 2-D densities; {args.data} has dimension {density.dim}")
    flow = realnvp(2, blocks=8, hidden=(64, 64), seed=args.seed)
    print(f"Training RealNVP (8 affine couplings, hidden 64x64, {sum(p.numel() for p in flow.parameters())} parameters) "
          f"on {args.data} for {args.steps} steps at batch {args.batch_size}")
    start = time.perf_counter()
    fit(flow, density, steps=args.steps, batch_size=args.batch_size, seed=args.seed)
    seconds = time.perf_counter() - start
    result = evaluate(flow, density, n=50000, seed=args.seed + 1)
    print(f"KL(p || q) = {result['kl']:.4f} ± {result['kl_se']:.4f} nats   (test NLL {result['nll']:.4f}; "
          f"true entropy {result['entropy']:.4f}; {seconds:.1f} s of training)")

    out = Path(args.out)
    flow.eval()
    with torch.no_grad():
        samples = flow.sample(50000, generator=torch.Generator().manual_seed(args.seed))
    figure = side_by_side(
        [
            density_panel("true density", density.log_prob, BOUNDS),
            density_panel("learned density", flow.log_prob, BOUNDS),
            sample_panel("samples from the flow", samples, BOUNDS),
        ],
        out / "demo.png",
        suptitle=f"RealNVP on {args.data}: KL = {result['kl']:.3f} ± {result['kl_se']:.3f} nats",
    )
    checkpoint = save(flow, out / "realnvp.pt", metadata={"data": args.data, "steps": args.steps, "kl": result["kl"]})
    print(f"Figure: {figure}\nCheckpoint: {checkpoint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
