"""Benchmarks for continuous normalizing flows (issue 3). Every mode runs on its own:

    python benchmarks/cnf.py table    [--dims 2 8 32 128] [--batch 512] [--big-batch 128] [--iters 5] [--warmup 2]
    python benchmarks/cnf.py quality  [--density eight_gaussians] [--seconds 300] [--regularize] [--seed 0]
                                      [--objective flow_matching]                     (the same CNF, trained by FM)
    python benchmarks/cnf.py rnode    [--density eight_gaussians] [--seconds 300]     (two runs, in parallel)
    python benchmarks/cnf.py memory   [--dim 2] [--tols 1e-3 1e-7] [--trained-seconds 60] (adjoint vs direct)
    python benchmarks/cnf.py ffjord   --ffjord-dir /tmp/ffjord [--iters 200]          (time/iteration side by side)
    python benchmarks/cnf.py ffjord-kl --ffjord-dir /tmp/ffjord --density checkerboard --ckpt PATH

Every mode prints a Markdown table; ``--update-docs`` also replaces that mode's block in docs/benchmarks.md
(between ``<!-- cnf:MODE -->`` markers). Each measurement runs in a fresh child process with one thread
(``torch.set_num_threads(1)``), so that peak memory is that configuration's alone: on CPU it is the growth of
the child's peak RSS (``resource.getrusage``) from just before the first training step; on CUDA it is
``torch.cuda.max_memory_allocated``. At most two children run at once.

The model is FFJORD's toy configuration unless flags say otherwise: one CNF block, concat-squash MLP 64-64-64,
dopri5, atol = rtol = 1e-5, T = 0.5 learned (``--end-time``, ``--fixed-end-time``), Adam, lr 1e-3.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DOCS = ROOT / "docs" / "benchmarks.md"
sys.path.insert(0, str(HERE))

from cnf_common import build_flow, machine_line, model_args, run_child, run_children, update_docs  # noqa: E402
from ctflows.cli.arguments import (  # noqa: E402
    OneLineParser, fraction_below_one, non_negative_int, non_negative_number, positive_int, positive_number, seed_value,
)


# ---------------------------------------------------------------------------------------------- table
TABLE_CONFIGS = [  # (adjoint, divergence, regularized)
    (adj, div, reg) for adj in (True, False) for div in ("exact", "hutchinson") for reg in (False, True)
]


def cmd_table(args: argparse.Namespace) -> str:
    jobs = []
    for dim in args.dims:
        batch = args.big_batch if dim >= 128 else args.batch
        for adjoint, div, reg in TABLE_CONFIGS:
            jobs.append([
                "row", "--dim", str(dim), "--batch", str(batch), "--iters", str(args.iters), "--warmup", str(args.warmup),
                "--adjoint", str(adjoint), "--divergence", div, *(["--regularize"] if reg else []), *model_args(args),
            ])
    rows = run_children(jobs, args.jobs, args.child_timeout)
    lines = [
        f"Time per training iteration (mean of {args.iters} after {args.warmup} warm-up iterations, fresh model), "
        f"NFE of the forward and backward solves, and peak memory growth of the child process. "
        f"Data: eight Gaussians for D = 2, `gaussian_mixture(dim=D)` samples above; batch {args.batch} ({args.big_batch} for D = 128). "
        f"{machine_line(args.device)}.",
        "",
        "| D | batch | backprop | divergence | RNODE | s / iter | NFE fwd | NFE bwd | peak mem (MiB) |",
        "| ---: | ---: | --- | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for job, r in zip(jobs, rows):
        dim, batch = job[2], job[4]
        adjoint, div, reg = job[10] == "True", job[12], "--regularize" in job
        if r is None or "error" in r:
            msg = "timeout" if r is None else r["error"][:60]
            lines.append(f"| {dim} | {batch} | {'adjoint' if adjoint else 'direct'} | {div} | {'yes' if reg else 'no'} | {msg} | | | |")
            continue
        lines.append(
            f"| {dim} | {batch} | {'adjoint' if adjoint else 'direct'} | {div} | {'yes' if reg else 'no'} | "
            f"{r['sec_per_iter']:.3f} | {r['nfe_forward']:.0f} | {r['nfe_backward']:.0f} | {r['peak_mib']:.1f} |"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- memory
def cmd_memory(args: argparse.Namespace) -> str:
    load, model = [], "fresh model"
    if args.trained_seconds:
        if args.dim not in (2, 16):  # the train child knows eight Gaussians and the default 16-D mixture
            raise SystemExit("memory: --trained-seconds needs --dim 2 (eight Gaussians) or 16 (the Gaussian mixture)")
        # A fresh field needs the solver's minimum of steps at any tolerance; a trained one does not.
        saved = Path(args.save_dir) / f"memory_d{args.dim}_{int(args.trained_seconds)}s.pt"
        saved.parent.mkdir(parents=True, exist_ok=True)
        density = "eight_gaussians" if args.dim == 2 else "gaussian_mixture"
        trained = run_child(["train", "--density", density, "--seconds", repr(args.trained_seconds), "--eval-n", "0",
                             "--save", str(saved), *model_args(args), "--adjoint", "False", "--batch", "256",
                             "--lr", "5e-3"], args.child_timeout)
        if trained is None or "error" in trained:
            raise SystemExit(f"memory: training the model failed: {trained}")
        load = ["--load", str(saved)]
        model = (f"model trained first for {args.trained_seconds:.0f} s ({trained['iterations']} iterations, {density}, "
                 "direct backprop, batch 256, lr 5e-3, cosine)")
    jobs = []
    for adjoint in (True, False):
        for tol in args.tols:
            jobs.append([
                "row", "--dim", str(args.dim), "--batch", str(args.batch), "--iters", str(args.iters),
                "--warmup", str(args.warmup), "--adjoint", str(adjoint), "--divergence", "exact",
                *model_args(args), *load, "--tol", str(tol),
            ])
    rows = run_children(jobs, args.jobs, args.child_timeout)
    lines = [
        f"Peak memory against the number of function evaluations: D = {args.dim}, batch {args.batch}, exact divergence, "
        f"{model}, mean of {args.iters} iterations after {args.warmup} warm-up. {machine_line(args.device)}.",
        "",
        "| backprop | atol = rtol | NFE fwd | NFE bwd | s / iter | peak mem (MiB) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for job, r in zip(jobs, rows):
        adjoint, tol = job[10] == "True", job[-1]
        if r is None or "error" in r:
            lines.append(f"| {'adjoint' if adjoint else 'direct'} | {tol} | failed | | | |")
            continue
        lines.append(
            f"| {'adjoint' if adjoint else 'direct'} | {float(tol):g} | {r['nfe_forward']:.0f} | {r['nfe_backward']:.0f} | "
            f"{r['sec_per_iter']:.3f} | {r['peak_mib']:.1f} |"
        )
    return "\n".join(lines)


def rnode_weights(weights: dict[str, float], elapsed: float, seconds: float, schedule: str) -> dict[str, float]:
    """The RNODE weights of a step taken after ``elapsed`` of ``seconds``: constant, or decaying linearly to 0."""
    if schedule == "constant":
        return weights
    return {name: w * max(0.0, 1.0 - elapsed / seconds) for name, w in weights.items()}


def likelihood_step(flow, opt, x, weights: dict[str, float], clip: float | None = None):
    """One maximum-likelihood step (NLL + weighted RNODE terms), as both timing loops take it; returns (NLL, loss)."""
    from ctflows.core.stats import regularization_terms

    flow.train()
    nll = -flow.log_prob(x).mean()
    terms = regularization_terms(flow)
    loss = nll + sum(w * terms[k] for k, w in weights.items())
    descend(flow, opt, loss, clip)
    return nll.detach(), loss.detach()  # the callers keep them until the next step; not the spent graph


def matching_step(flow, opt, x, objective):
    """One flow-matching step (regression of the field, no ODE solve); returns the loss, detached."""
    flow.train()
    loss, _ = objective(flow, x, None)
    descend(flow, opt, loss)
    return loss.detach()


def descend(flow, opt, loss, clip: float | None = None) -> None:
    """Backpropagate ``loss`` and take one optimizer step (the gradient norm clipped at ``clip`` if given)."""
    import torch

    opt.zero_grad(set_to_none=True)
    loss.backward()
    if clip:
        torch.nn.utils.clip_grad_norm_(flow.parameters(), clip)
    opt.step()


def cmd_row(args: argparse.Namespace) -> None:
    """One configuration in this process: JSON on the last line of stdout."""
    import torch

    import ctflows
    from ctflows.core.stats import count_stats

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    flow = build_flow(args.dim, args, adjoint=args.adjoint == "True", divergence=args.divergence).to(device)
    if args.load:
        flow.load_state_dict(torch.load(args.load, map_location=device))
    density = ctflows.get_density("gaussian_mixture", dim=args.dim) if args.dim != 2 else ctflows.get_density("eight_gaussians")
    gen = torch.Generator().manual_seed(args.seed)
    batches = [density.sample(args.batch, generator=gen).float().to(device) for _ in range(args.warmup + args.iters)]
    opt = torch.optim.Adam(flow.parameters(), lr=args.lr)
    weights = {"kinetic_energy": args.kinetic, "jacobian_frobenius": args.frobenius} if args.regularize else {}
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    times, fwd, bwd = [], [], []
    for i, x in enumerate(batches):
        t0 = time.perf_counter()
        _, loss = likelihood_step(flow, opt, x, weights)
        if cuda:
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        counts = count_stats(flow)
        if i >= args.warmup:
            times.append(dt)
            fwd.append(counts.get("nfe_forward", 0))
            bwd.append(counts.get("nfe_backward", 0))
    if cuda:
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
    print(json.dumps({
        "sec_per_iter": sum(times) / len(times), "nfe_forward": sum(fwd) / len(fwd), "nfe_backward": sum(bwd) / len(bwd),
        "peak_mib": peak, "loss": float(loss.detach()),
    }))


# -------------------------------------------------------------------------------------- quality / rnode
def cmd_quality(args: argparse.Namespace) -> str:
    if args.objective == "flow_matching" and args.regularize:
        raise SystemExit("quality: --regularize weights the likelihood objective only; flow matching would ignore them")
    job = ["train", "--density", args.density, "--seconds", str(args.seconds), *model_args(args),
           *(["--regularize"] if args.regularize else []), *(["--steer", repr(args.steer)] if args.steer else [])]
    (r,) = run_children([job], 1, args.seconds * 3 + 600)
    name = "flow matching (independent coupling)" if args.objective == "flow_matching" else "maximum likelihood"
    rnode = f", RNODE (K {args.kinetic:g}, B {args.frobenius:g}{decaying(args)})" if args.regularize else ""
    return quality_table(args, [(name + rnode + (f", STEER {args.steer:g}" if args.steer else ""), r)])


def decaying(args: argparse.Namespace) -> str:
    """``", decaying"`` when the RNODE weights decay over the budget (and there are weights), else ``""``."""
    return ", decaying" if args.weight_schedule == "decay" and (args.kinetic or args.frobenius) else ""


def cmd_rnode(args: argparse.Namespace) -> str:
    regularized = ["--regularize"] if args.kinetic or args.frobenius else []
    name = f"RNODE (K {args.kinetic:g}, B {args.frobenius:g}{decaying(args)})" if regularized else ""
    if args.steer:
        regularized += ["--steer", repr(args.steer)]
        name += (" + " if name else "") + f"STEER (b {args.steer:g})"
    if not regularized:
        raise SystemExit("rnode: give RNODE weights (--kinetic, --frobenius) or --steer, or there is nothing to compare")
    jobs = [["train", "--density", args.density, "--seconds", str(args.seconds), *model_args(args), *extra]
            for extra in ([], regularized)]
    rows = run_children(jobs, 2, args.seconds * 3 + 600)
    return quality_table(args, [("plain", rows[0]), (name, rows[1])])


def quality_table(args: argparse.Namespace, results: list) -> str:
    lines = [
        f"`{args.density}`, {args.seconds:g} s of training (wall clock, evaluation excluded), batch {args.batch}, "
        f"Adam lr {args.lr:g} with {args.warmup_frac:.0%} linear warm-up then cosine decay over the time budget "
        f"(never below 1% of the peak); "
        f"KL(p‖q) ± standard error on {args.eval_n} fresh samples with the exact divergence in eval() mode "
        f"(eval atol = rtol = {args.eval_tol:g}). {machine_line(args.device)}.",
        "",
        "| model | iterations | s / iter | train NFE fwd+bwd (last) | KL (nats) | eval NFE | T |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in results:
        if r is None or "error" in r:
            lines.append(f"| {name} | failed: {'timeout' if r is None else r['error'][:80]} | | | | | |")
            continue
        lines.append(
            f"| {name} | {r['iterations']} | {r['sec_per_iter']:.3f} | {r['nfe_train']:.0f} | "
            f"{r['kl']:.4f} ± {r['kl_se']:.4f} | {r['eval_nfe']} | {', '.join(f'{t:.3f}' for t in r['end_time'])} |"
        )
    return "\n".join(lines)


def cmd_train(args: argparse.Namespace) -> None:
    """Train for ``--seconds`` of wall clock in this process, then evaluate: JSON on the last line."""
    import torch

    import ctflows
    from ctflows.continuous.matching import FlowMatching
    from ctflows.core.stats import count_stats
    from ctflows.training.schedule import lr_factor

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    density = ctflows.get_density(args.density)
    dim = density.dim
    flow = build_flow(dim, args, adjoint=args.adjoint == "True", divergence=args.divergence).to(device)
    gen = torch.Generator().manual_seed(args.seed)
    opt = torch.optim.Adam(flow.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    weights = {"kinetic_energy": args.kinetic, "jacobian_frobenius": args.frobenius} if args.regularize else {}
    matching = FlowMatching(coupling="independent") if args.objective == "flow_matching" else None
    elapsed, it, nfe = 0.0, 0, 0
    times, nfe_fwd, nfe_bwd = [], [], []
    while elapsed < args.seconds and (args.iters is None or it < args.iters):
        t0 = time.perf_counter()
        scale = 1.0 if args.schedule == "constant" else lr_factor(elapsed / args.seconds, warmup=args.warmup_frac)
        for g in opt.param_groups:
            g["lr"] = args.lr * max(scale, 0.01)
        x = density.sample(args.batch, generator=gen).float().to(device)
        if matching is None:
            nll, _ = likelihood_step(flow, opt, x, rnode_weights(weights, elapsed, args.seconds, args.weight_schedule), args.clip)
        else:
            nll = matching_step(flow, opt, x, matching)
        if device.type == "cuda":
            torch.cuda.synchronize()  # the step's time, not its launch
        counts = count_stats(flow)
        nfe = counts.get("nfe_forward", 0) + counts.get("nfe_backward", 0)
        dt = time.perf_counter() - t0
        elapsed += dt
        it += 1
        times.append(dt)
        nfe_fwd.append(counts.get("nfe_forward", 0))
        nfe_bwd.append(counts.get("nfe_backward", 0))
        if args.log_every and it % args.log_every == 0:
            print(f"it {it} t {elapsed:.0f}s nll {float(nll):.4f} nfe {nfe}", file=sys.stderr, flush=True)
    end_times = []
    for m in flow.modules():
        if isinstance(m, ctflows.CNF):
            m.eval_atol = m.eval_rtol = args.eval_tol
            end_times.append(float(torch.as_tensor(m.end_time).detach()))
    if args.save:
        torch.save(flow.state_dict(), args.save)
    if args.eval_n == 0:  # timing only
        print(json.dumps({"iterations": it, "seconds": elapsed, "times": times, "nfe_fwd": nfe_fwd, "nfe_bwd": nfe_bwd}))
        return
    t0 = time.perf_counter()
    result = ctflows.evaluate(flow, density, n=args.eval_n, batch_size=args.eval_n, seed=12345)
    eval_nfe = count_stats(flow).get("nfe_forward", 0)
    print(json.dumps({
        "iterations": it, "seconds": elapsed, "sec_per_iter": elapsed / it, "nfe_train": nfe, "kl": result["kl"],
        "kl_se": result["kl_se"], "exact": result["exact"], "eval_nfe": eval_nfe, "eval_seconds": time.perf_counter() - t0,
        "end_time": end_times,  # T after training, per CNF (learned unless --fixed-end-time)
    }))


# -------------------------------------------------------------------------------------------- ffjord
def cmd_ffjord(args: argparse.Namespace) -> str:
    from cnf_ffjord import ffjord_quality, ffjord_time_per_iter

    return ffjord_quality(args) if args.seconds else ffjord_time_per_iter(args)


def cmd_ffjord_kl(args: argparse.Namespace) -> None:
    from cnf_ffjord import ffjord_kl

    print(json.dumps(ffjord_kl(args)))


# ---------------------------------------------------------------------------------------------- main
def main() -> None:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--hidden", type=positive_int, nargs="+", default=[64, 64, 64])
        p.add_argument("--activation", default="tanh", help="FFJORD's train_toy default is tanh")
        p.add_argument("--layer", default="concatsquash")
        p.add_argument("--method", default="dopri5")
        p.add_argument("--tol", type=positive_number, default=1e-5, help="training atol = rtol")
        p.add_argument("--eval-tol", type=positive_number, default=1e-5, help="evaluation atol = rtol")
        p.add_argument("--end-time", type=positive_number, default=0.5)
        p.add_argument("--fixed-end-time", action="store_true", help="do not learn T (FFJORD learns it)")
        p.add_argument("--no-seminorm", action="store_true", help="error control on every state, as FFJORD")
        p.add_argument("--compile-field", action="store_true", help="CNF(compile_field=True): torch.compile the field")
        p.add_argument("--no-warm-start", action="store_true", help="CNF(warm_start_step=False): torchdiffeq picks each first step")
        p.add_argument("--kinetic", type=non_negative_number, default=0.01)
        p.add_argument("--frobenius", type=non_negative_number, default=0.01)
        p.add_argument("--weight-schedule", default="constant", choices=["constant", "decay"],
                       help="RNODE weights constant, or decaying linearly to 0 over the time budget")
        p.add_argument("--lr", type=positive_number, default=1e-3)
        p.add_argument("--batch", type=positive_int, default=512)
        p.add_argument("--seed", type=seed_value, default=0)
        p.add_argument("--device", default="cpu")
        p.add_argument("--jobs", type=positive_int, default=2, help="child processes at once (at most 2 on a 2-core box)")
        p.add_argument("--child-timeout", type=positive_number, default=900)
        p.add_argument("--update-docs", action="store_true", help=f"replace this mode's block in {DOCS.relative_to(ROOT)}")

    p = sub.add_parser("table", help="time / NFE / memory over D, adjoint, divergence, RNODE")
    common(p)
    p.add_argument("--dims", type=positive_int, nargs="+", default=[2, 8, 32, 128])
    p.add_argument("--big-batch", type=positive_int, default=128, help="batch for D >= 128")
    p.add_argument("--iters", type=positive_int, default=5)
    p.add_argument("--warmup", type=non_negative_int, default=2)

    p = sub.add_parser("memory", help="adjoint vs direct peak memory at two tolerances")
    common(p)
    p.add_argument("--dim", type=positive_int, default=2)
    p.add_argument("--tols", type=positive_number, nargs="+", default=[1e-3, 1e-7])
    p.add_argument("--iters", type=positive_int, default=3)
    p.add_argument("--warmup", type=non_negative_int, default=1)
    p.add_argument("--trained-seconds", type=non_negative_number, default=0.0, help="train the model this long first (0: fresh)")
    p.add_argument("--save-dir", default="/tmp/cnf_memory_runs", help="where the trained model goes")

    for name in ("quality", "rnode"):
        p = sub.add_parser(name, help="KL after a wall-clock budget" if name == "quality" else "plain vs RNODE at one budget")
        common(p)
        p.add_argument("--density", default="eight_gaussians")
        p.add_argument("--seconds", type=positive_number, default=300)
        p.add_argument("--warmup-frac", type=fraction_below_one, default=0.05)
        p.add_argument("--eval-n", type=positive_int, default=10000)
        p.add_argument("--adjoint", default="True")
        p.add_argument("--divergence", default="exact")
        p.add_argument("--regularize", action="store_true")
        p.add_argument("--objective", default="likelihood", choices=["likelihood", "flow_matching"])
        p.add_argument("--steer", type=fraction_below_one, default=0.0,
                       help="CNF(end_time_jitter=b), STEER; in rnode mode the regularized model only")

    p = sub.add_parser("ffjord", help="time per iteration: FFJORD's train_toy.py vs ctflows, same config")
    common(p)
    p.add_argument("--ffjord-dir", required=True)
    p.add_argument("--ffjord-python", default=sys.executable)
    p.add_argument("--data", default="8gaussians", help="FFJORD's name (8gaussians, checkerboard, ...)")
    p.add_argument("--iters", type=positive_int, default=200)
    p.add_argument("--skip", type=non_negative_int, default=10, help="warm-up iterations left out of the mean")
    p.add_argument("--no-ours", action="store_true")
    p.add_argument("--seconds", type=positive_number, default=None, help="instead: train both this long and compare KL")
    p.add_argument("--eval-n", type=positive_int, default=10000)
    p.add_argument("--save-dir", default="/tmp/cnf_ffjord_runs", help="where FFJORD's checkpoint goes")
    p.add_argument("--ours-extra", nargs=argparse.REMAINDER, default=[], help="extra flags for our trainer (last)")

    p = sub.add_parser("ffjord-kl", help="KL of a trained FFJORD checkpoint against ctflows' exact density")
    common(p)
    p.add_argument("--ffjord-dir", required=True)
    p.add_argument("--density", default="eight_gaussians")
    p.add_argument("--ckpt", required=True)
    p.add_argument("--eval-n", type=positive_int, default=10000)

    # Internal: one measurement in a fresh process.
    p = sub.add_parser("row")
    common(p)
    p.add_argument("--dim", type=positive_int, required=True)
    p.add_argument("--iters", type=positive_int, default=5)
    p.add_argument("--warmup", type=non_negative_int, default=2)
    p.add_argument("--adjoint", default="True")
    p.add_argument("--divergence", default="exact")
    p.add_argument("--regularize", action="store_true")
    p.add_argument("--load", default="", help="start from this saved state_dict")

    p = sub.add_parser("train")
    common(p)
    p.add_argument("--density", default="eight_gaussians")
    p.add_argument("--seconds", type=positive_number, default=300)
    p.add_argument("--warmup-frac", type=fraction_below_one, default=0.05)
    p.add_argument("--eval-n", type=non_negative_int, default=10000, help="KL samples (0: timing only)")
    p.add_argument("--adjoint", default="True")
    p.add_argument("--divergence", default="exact")
    p.add_argument("--regularize", action="store_true")
    p.add_argument("--clip", type=non_negative_number, default=0.0)
    p.add_argument("--log-every", type=non_negative_int, default=0)
    p.add_argument("--save", default="")
    p.add_argument("--iters", type=positive_int, default=None, help="stop after this many iterations (timing runs)")
    p.add_argument("--schedule", default="cosine", choices=["cosine", "constant"])
    p.add_argument("--objective", default="likelihood", choices=["likelihood", "flow_matching"])
    p.add_argument("--weight-decay", type=non_negative_number, default=0.0)
    p.add_argument("--steer", type=fraction_below_one, default=0.0, help="CNF(end_time_jitter=b), STEER")

    args = parser.parse_args()
    if args.mode == "row":
        return cmd_row(args)
    if args.mode == "train":
        return cmd_train(args)
    if args.mode == "ffjord-kl":
        return cmd_ffjord_kl(args)
    text = {"table": cmd_table, "memory": cmd_memory, "quality": cmd_quality, "rnode": cmd_rnode, "ffjord": cmd_ffjord}[args.mode](args)
    command = "python benchmarks/cnf.py " + " ".join(sys.argv[1:]).replace(" --update-docs", "")
    print(text)
    if args.update_docs:
        key = args.mode if args.mode not in ("quality", "rnode") else f"{args.mode}-{args.density}"
        # Settings that change the result get their own block (the defaults keep the original keys).
        if args.mode == "quality":
            key += "-fm" * (args.objective == "flow_matching") + "-rnode" * args.regularize + f"-adjoint{args.adjoint}" * (args.adjoint != "True")
        if args.mode == "rnode" and (args.kinetic, args.frobenius) != (0.01, 0.01):
            key += f"-{args.kinetic:g}-{args.frobenius:g}"
        if args.mode in ("quality", "rnode"):
            key += f"-steer{args.steer:g}" * bool(args.steer) + "-decay" * bool(decaying(args))
        if args.mode == "ffjord":
            key = f"ffjord-{args.data}" + (f"-{args.seconds:g}s" if args.seconds else "") + "-compiled" * args.compile_field
        key += "-cold" * args.no_warm_start  # in every mode, so a cold run never replaces a warm run's block
        update_docs(DOCS, key, f"```\n{command}\n```\n\n{text}\n")


if __name__ == "__main__":
    main()
