"""Benchmark of the discrete flow families, side by side with zuko's neural spline flow when installed (issue 4).

    python benchmarks/discrete.py steps   [--densities eight_gaussians checkerboard gaussian_mixture:16] [--steps 2000]
    python benchmarks/discrete.py seconds [--densities ...] [--seconds 60]
        common: [--families realnvp spline maf resflow nice] [--no-zuko] [--batch 512] [--seed 0] [--update-docs]

All models of one density train in ONE process with one thread, interleaved step by step (``steps``: every
model takes step s before any takes s + 1, in an order that alternates each step; ``seconds``: the model that
has trained least so far goes next), so machine noise falls on all of them alike. Every model sees the same
data stream (its own generator, same seed: batch s is the same tensor for all), the same optimizer (AdamW,
peak lr 5e-3, 30% linear warm-up then cosine decay over the budget, gradient norm clipped at 1: the
defaults of ``ctflows.fit``, except weight decay 0.01, torch's AdamW default, where ``fit``'s is 0) and the
same batch size. Reported per model: KL(p‖q) ± standard error from
``ctflows.evaluate`` on the same held-out samples for every model (zuko's flow is wrapped so that evaluate
calls its ``log_prob``), median seconds per training step after warm-up, median seconds to sample 10,000
points, and the parameter count (every element of every parameter; zuko's masked weights count in full).

zuko (``pip install ctflows[bench]``; Rozet et al., https://github.com/probabilists/zuko) adds two rows: its
``NSF`` as shipped (fully autoregressive, 3 transforms, hidden 64-64, 8 bins on [-5, 5]) and ``NSF(passes=2)``,
its coupling variant. ctflows' spline flow gets the number of blocks (hidden 64-64, 8 bins) that brings its
parameter count nearest zuko's, and the ratio rows divide ctflows' spline by each zuko row.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DOCS = ROOT / "docs" / "benchmarks.md"
sys.path.insert(0, str(HERE))

import ctflows  # noqa: E402
from ctflows.cli.arguments import OneLineParser, fraction_below_one, non_negative_int, positive_int, positive_number, seed_value  # noqa: E402
from ctflows.core import Flow  # noqa: E402
from ctflows.models import maf  # noqa: E402
from ctflows.training.schedule import Schedule  # noqa: E402
from cnf_common import machine_line, update_docs  # noqa: E402

HIDDEN = (64, 64)
BINS = 8
ZUKO_TRANSFORMS = 3
FAMILIES = ("realnvp", "spline", "maf", "resflow", "nice")


# ------------------------------------------------------------------------------------------------ models
class ZukoFlow(nn.Module):
    """A zuko lazy flow behind ctflows' model surface: ``log_prob(x [B, D]) -> [B]``, ``sample(n) -> [n, D]``.

    zuko builds its distribution on each call (``flow()``), so both methods do that; ``stats`` is empty
    because zuko's log-dets are exact, which is what ``ctflows.evaluate`` needs to know. With ``loc`` and
    ``scale`` ([D]) the flow models u = (x - loc) / scale, as zuko's docs advise for its [-5, 5] splines:
    log q(x) = log q_u(u) - Σ log scale.
    """

    def __init__(self, flow: nn.Module, loc: Tensor | None = None, scale: Tensor | None = None) -> None:
        super().__init__()
        self.flow = flow
        self.stats: dict = {}
        self.register_buffer("loc", loc)
        self.register_buffer("scale", scale)

    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        if self.scale is None:
            return self.flow().log_prob(x)
        return self.flow().log_prob((x - self.loc) / self.scale) - self.scale.log().sum()

    def sample(self, n: int, context: Tensor | None = None) -> Tensor:
        u = self.flow().sample((n,))
        return u if self.scale is None else u * self.scale + self.loc


def zuko_module():
    """The ``zuko`` module, or None when it is not installed (the benchmark then runs ctflows alone)."""
    try:
        import zuko
    except ImportError:
        return None
    return zuko


def count_parameters(model: nn.Module) -> int:
    """Number of scalar parameters of ``model``."""
    return sum(p.numel() for p in model.parameters())


def matched_spline_blocks(features: int, target: int, max_blocks: int = 16) -> int:
    """Blocks of ``ctflows.spline(features, hidden=HIDDEN, bins=BINS)`` whose parameter count is nearest ``target``."""
    counts = {b: count_parameters(ctflows.spline(features, blocks=b, hidden=HIDDEN, bins=BINS)) for b in range(1, max_blocks + 1)}
    return min(counts, key=lambda b: abs(counts[b] - target))


def build_models(features: int, families: list[str], zuko, standardize: tuple[Tensor, Tensor] | None = None) -> dict[str, nn.Module]:
    """Fresh models by display name; the zuko rows come first so that the spline can be matched to them.

    ``standardize = (loc, scale)`` makes the zuko flows model standardised data (see :class:`ZukoFlow`).
    """
    models: dict[str, nn.Module] = {}
    if zuko is not None:
        loc, scale = standardize or (None, None)
        tag = " standardised" if standardize else ""
        models[f"zuko NSF{tag}"] = ZukoFlow(
            zuko.flows.NSF(features, bins=BINS, transforms=ZUKO_TRANSFORMS, hidden_features=HIDDEN), loc, scale
        )
        models[f"zuko NSF{tag} (passes=2)"] = ZukoFlow(
            zuko.flows.NSF(features, bins=BINS, transforms=ZUKO_TRANSFORMS, hidden_features=HIDDEN, passes=2), loc, scale
        )
    builders: dict[str, Callable[[], nn.Module]] = {
        "realnvp": lambda: ctflows.realnvp(features, hidden=HIDDEN),
        "spline": lambda: ctflows.spline(features, blocks=spline_blocks, hidden=HIDDEN, bins=BINS),
        "maf": lambda: maf(features),
        "resflow": lambda: ctflows.resflow(features, hidden=HIDDEN),
        "nice": lambda: ctflows.nice(features, hidden=HIDDEN),
    }
    spline_blocks = 4
    if zuko is not None and "spline" in families:
        spline_blocks = matched_spline_blocks(features, count_parameters(next(iter(models.values()))))
    for name in families:
        models[f"ctflows {name}" + (f" ({spline_blocks} blocks)" if name == "spline" else "")] = builders[name]()
    return models


# -------------------------------------------------------------------------------------------- training
@dataclass
class Run:
    """One model's training state and measurements."""

    model: nn.Module
    generator: torch.Generator
    optimizer: torch.optim.Optimizer | None = None
    steps: int = 0
    seconds: float = 0.0
    step_times: list[float] = field(default_factory=list)
    schedule: Schedule | None = None


def make_runs(models: dict[str, nn.Module], density, batch: int, seed: int, lr: float) -> dict[str, Run]:
    """Per model: a generator seeded alike, a data-dependent initialisation pass (ActNorm), then AdamW."""
    runs = {}
    for name, model in models.items():
        init = density.sample(batch, generator=torch.Generator().manual_seed(seed + 1)).float()
        model.train()
        with torch.no_grad():  # as ctflows.fit does before building its optimizer
            model.log_prob(init)
        run = Run(model, torch.Generator().manual_seed(seed))
        # The published tables were measured with torch's default decay; fit's is 0.
        run.optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
        runs[name] = run
    return runs


def train_step(run: Run, density, batch: int, lr: float, clip: float) -> None:
    """One AdamW step on ``-mean log q(x)`` for a fresh batch at peak ``lr`` times the schedule, timed (sampling excluded)."""
    x = density.sample(batch, generator=run.generator).float()
    # The step about to be taken is estimated to cost what the last one did, as fit's schedule does.
    last = run.step_times[-1] if run.step_times else 0.0
    for group in run.optimizer.param_groups:
        group["lr"] = lr * run.schedule.factor(run.steps, run.seconds, step_seconds=last)
    start = time.perf_counter()
    loss = -run.model.log_prob(x).mean()
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(run.model.parameters(), clip)
    run.optimizer.step()
    elapsed = time.perf_counter() - start
    run.steps += 1
    run.seconds += elapsed
    run.step_times.append(elapsed)


def train_interleaved(runs: dict[str, Run], density, args: argparse.Namespace) -> None:
    """``steps``: round robin, order reversed every step; ``seconds``: the least-trained model goes next."""
    names = list(runs)
    for run in runs.values():
        run.schedule = Schedule.build("cosine", args.warmup, steps=args.steps if args.mode == "steps" else None,
                                      seconds=args.seconds if args.mode == "seconds" else None)
    if args.mode == "steps":
        for s in range(args.steps):
            for name in names if s % 2 == 0 else reversed(names):
                train_step(runs[name], density, args.batch, args.lr, args.clip)
        return
    while True:
        active = [n for n in names if runs[n].seconds < args.seconds]
        if not active:
            return
        name = min(active, key=lambda n: runs[n].seconds)
        train_step(runs[name], density, args.batch, args.lr, args.clip)


def sampling_seconds(model: nn.Module, n: int, repeats: int) -> float:
    """Median wall-clock seconds of ``model.sample(n)`` in eval mode without gradients."""
    model.eval()
    times = []
    with torch.no_grad():
        for _ in range(repeats):
            start = time.perf_counter()
            model.sample(n)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


# --------------------------------------------------------------------------------------------- report
def measure(density_spec: str, args: argparse.Namespace, zuko) -> tuple[str, dict[str, dict]]:
    """Train every model on one density, evaluate and time it; returns the density's name and results by model."""
    name, _, dim = density_spec.partition(":")
    density = ctflows.get_density(name, **({"dim": int(dim)} if dim else {}))
    torch.manual_seed(args.seed)
    standardize = None
    if args.zuko_standardize:  # moments of a separate draw, so no training or evaluation point is reused
        x = density.sample(10000, generator=torch.Generator().manual_seed(args.seed + 2)).float()
        standardize = (x.mean(dim=0), x.std(dim=0))
    models = build_models(density.dim, args.families, zuko, standardize)
    runs = make_runs(models, density, args.batch, args.seed, args.lr)
    train_interleaved(runs, density, args)
    results = {}
    for label, run in runs.items():
        result = ctflows.evaluate(run.model, density, n=args.eval_n, seed=args.seed + 12345)
        timed = run.step_times[args.skip:] or run.step_times
        results[label] = {
            "kl": result["kl"], "kl_se": result["kl_se"], "steps": run.steps, "train_s": run.seconds,
            "step_s": statistics.median(timed), "sample_s": sampling_seconds(run.model, args.sample_n, args.sample_repeats),
            "params": count_parameters(run.model),
        }
        print(f"{density_spec} {label}: {results[label]}", file=sys.stderr, flush=True)
    return f"{name}" + (f" (D = {dim})" if dim else ""), results


def table(title: str, results: dict[str, dict], args: argparse.Namespace) -> str:
    """The Markdown table of one density, with ctflows-spline / zuko ratio rows when zuko ran."""
    points = f"{args.sample_n // 1000}k" if args.sample_n % 1000 == 0 else str(args.sample_n)
    budget = f"{args.steps} steps" if args.mode == "steps" else f"{args.seconds:g} s of training each"
    lines = [
        f"`{title}`: {budget}, batch {args.batch}, seed {args.seed}; KL(p‖q) ± s.e. on {args.eval_n} held-out "
        f"samples (the same for every model); s/step is the median after the first {args.skip} steps; sampling is "
        f"the median of {args.sample_repeats} draws of {args.sample_n} points.",
        "",
        f"| model | params | steps | KL (nats) | s / step | sample {points} (s) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, r in results.items():
        lines.append(
            f"| {label} | {r['params']} | {r['steps']} | {r['kl']:.4f} ± {r['kl_se']:.4f} | {r['step_s']:.4f} | {r['sample_s']:.4f} |"
        )
    spline = next((label for label in results if label.startswith("ctflows spline")), None)
    for label in [lb for lb in results if lb.startswith("zuko")] if spline else []:
        ours, theirs = results[spline], results[label]
        lines.append(
            f"| ratio ctflows spline / {label} | {ours['params'] / theirs['params']:.2f} | "
            f"{ours['steps'] / theirs['steps']:.2f} | {ours['kl'] / theirs['kl']:.2f} | "
            f"{ours['step_s'] / theirs['step_s']:.2f} | {ours['sample_s'] / theirs['sample_s']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    for mode in ("steps", "seconds"):
        p = sub.add_parser(mode, help="KL after a fixed number of steps" if mode == "steps" else "KL after a wall-clock budget")
        p.add_argument("--densities", nargs="+", default=["eight_gaussians", "checkerboard", "gaussian_mixture:16"],
                       help="toy density names; NAME:D sets the dimension")
        p.add_argument("--families", nargs="+", choices=FAMILIES, default=["realnvp", "spline", "maf", "resflow"])
        p.add_argument("--no-zuko", action="store_true", help="leave zuko out even when installed")
        p.add_argument("--zuko-standardize", action="store_true",
                       help="zuko models (x - mean) / std, moments from 10,000 separate samples (its docs' advice)")
        if mode == "steps":
            p.add_argument("--steps", type=positive_int, default=2000)
        else:
            p.add_argument("--seconds", type=positive_number, default=60.0, help="training seconds per model")
        p.add_argument("--batch", type=positive_int, default=512)
        p.add_argument("--lr", type=positive_number, default=5e-3)
        p.add_argument("--warmup", type=fraction_below_one, default=0.3)
        p.add_argument("--clip", type=positive_number, default=1.0)
        p.add_argument("--seed", type=seed_value, default=0)
        p.add_argument("--skip", type=non_negative_int, default=20, help="warm-up steps left out of the median step time")
        p.add_argument("--eval-n", type=positive_int, default=20000)
        p.add_argument("--sample-n", type=positive_int, default=10000)
        p.add_argument("--sample-repeats", type=positive_int, default=3)
        p.add_argument("--update-docs", action="store_true", help=f"replace this run's blocks in {DOCS.relative_to(ROOT)}")
    args = parser.parse_args()
    torch.set_num_threads(1)
    zuko = None if args.no_zuko else zuko_module()
    header = machine_line() + (f", zuko {zuko.__version__}" if zuko else ", zuko not installed: ctflows families only")
    print(header, file=sys.stderr)
    command = "python benchmarks/discrete.py " + " ".join(sys.argv[1:]).replace(" --update-docs", "")
    for spec in args.densities:
        title, results = measure(spec, args, zuko)
        text = table(title, results, args) + f"\n\n{header}."
        print(text + "\n", flush=True)
        if args.update_docs:
            key = f"{args.mode}-{spec.replace(':', '')}" + ("-standardized" if args.zuko_standardize else "")
            update_docs(DOCS, key, f"```\n{command}\n```\n\n{text}\n", family="discrete")


if __name__ == "__main__":
    main()
