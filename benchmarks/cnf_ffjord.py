"""Side-by-side runs against the FFJORD reference code (Grathwohl et al. 2019, github.com/rtqichen/ffjord).

The reference is NOT part of ctflows: check it out outside this repository (e.g. /tmp/ffjord) and pass
``--ffjord-dir``. Its ``train_toy.py`` is run as a subprocess with the same configuration as ours and its
per-iteration ``Time`` log lines are parsed; a trained FFJORD checkpoint is scored against ctflows' exact
toy density by importing the reference's own model builder from ``--ffjord-dir`` (``ffjord_kl``).
See docs/benchmarks.md for the small compatibility shims the reference needs on a modern torch.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cnf_common import machine_line, model_args, run_child

OUR_NAMES = {"8gaussians": "eight_gaussians", "checkerboard": "checkerboard", "pinwheel": "pinwheel", "rings": "rings"}
LINE = re.compile(r"Iter (\d+) \| Time ([\d.]+)\([\d.]+\) \| Loss ([-\d.]+)\([-\d.]+\) \| NFE Forward (\d+)\([\d.]+\) \| NFE Backward (\d+)")


def ffjord_command(args: argparse.Namespace, save: str, *, iters: int, seconds: float | None = None) -> list[str]:
    cmd = [
        args.ffjord_python, "train_toy.py", "--data", args.data, "--dims", "-".join(map(str, args.hidden)),
        "--layer_type", args.layer, "--nonlinearity", args.activation, "--solver", args.method,
        "--atol", repr(args.tol), "--rtol", repr(args.tol), "--batch_size", str(args.batch),
        "--time_length", repr(args.end_time), "--train_T", str(not args.fixed_end_time), "--lr", repr(args.lr),
        "--niters", str(iters), "--viz_freq", "1000000000", "--val_freq", "1000000000", "--save", save,
    ]
    if seconds is not None:
        cmd += ["--max_seconds", repr(seconds)]
    return cmd


def run_ffjord(args: argparse.Namespace, save: str, *, iters: int, seconds: float | None = None) -> list[tuple[float, int, int]]:
    """(seconds, nfe forward, nfe backward) per iteration, from the reference's own log."""
    proc = subprocess.run(ffjord_command(args, save, iters=iters, seconds=seconds), cwd=args.ffjord_dir,
                          capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg"})
    rows = [(float(m[2]), int(m[4]), int(m[5])) for m in LINE.finditer(proc.stdout + proc.stderr)]
    if not rows:
        raise RuntimeError(f"FFJORD produced no iterations:\n{(proc.stdout + proc.stderr)[-2000:]}")
    return rows


def ffjord_time_per_iter(args: argparse.Namespace) -> str:
    """Both trainers for ``--iters`` iterations from scratch, in parallel (one thread each)."""
    density = OUR_NAMES[args.data]
    ours_job = ["train", "--density", density, "--iters", str(args.iters), "--seconds", "1e9", "--schedule", "constant",
                "--weight-decay", "1e-5", "--eval-n", "0", *model_args(args)]
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(2) as pool:
        ref = pool.submit(run_ffjord, args, tmp, iters=args.iters)
        ours = None if args.no_ours else pool.submit(run_child, ours_job, 3600)
        ref_rows = ref.result()
        our = ours.result() if ours is not None else None
    skip = args.skip

    def summary(times: list[float], fwd: list[int], bwd: list[int]) -> str:
        t, f, b = times[skip:], fwd[skip:], bwd[skip:]
        return (f"{len(t)} | {statistics.mean(t):.4f} | {statistics.median(t):.4f} | {statistics.mean(f):.1f} | "
                f"{statistics.mean(b):.1f} | {sum(times):.1f}")

    lines = [
        f"Time per training iteration over the first {args.iters} iterations from scratch (the first {skip} left out "
        f"of mean/median), both trainers run at the same time, one thread each: `{args.data}`, concat-squash "
        f"{'-'.join(map(str, args.hidden))}, {args.activation}, {args.method}, atol = rtol = {args.tol:g}, "
        f"batch {args.batch}, T = {args.end_time:g} {'fixed' if args.fixed_end_time else 'learned'}, adjoint, exact "
        f"divergence, Adam lr {args.lr:g} (weight decay 1e-5). ctflows: seminorm {'off' if args.no_seminorm else 'on'}, first steps {'by torchdiffeq' if args.no_warm_start else 'warm-started'}{', field compiled (torch.compile: the compiling happens in the first iterations, outside the mean and median but inside total s)' if args.compile_field else ''}. "
        f"{machine_line()}.",
        "",
        "| code | iterations averaged | mean s / iter | median s / iter | NFE fwd | NFE bwd | total s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        "| FFJORD reference | " + summary(*map(list, zip(*ref_rows))) + " |",
    ]
    if our is not None and "error" not in our:
        lines.append("| ctflows | " + summary(our["times"], our["nfe_fwd"], our["nfe_bwd"]) + " |")
        ratio = statistics.mean(our["times"][skip:]) / statistics.mean([r[0] for r in ref_rows][skip:])
        lines += ["", f"ctflows / FFJORD mean time per iteration: {ratio:.2f}"]
    elif our is not None:
        lines.append(f"| ctflows | failed: {our['error'][:80]} | | | | | |")
    return "\n".join(lines)


def ffjord_quality(args: argparse.Namespace) -> str:
    """Both trainers for ``--seconds`` of training time in parallel; both scored with ctflows' exact density."""
    density = OUR_NAMES[args.data]
    ours_job = ["train", "--density", density, "--seconds", repr(args.seconds), "--eval-n", str(args.eval_n),
                *model_args(args), *args.ours_extra]
    save = Path(args.save_dir) / f"ffjord_{args.data}_{int(args.seconds)}s"
    save.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(2) as pool:
        ref = pool.submit(run_ffjord, args, str(save), iters=10**9, seconds=args.seconds)
        ours = pool.submit(run_child, ours_job, args.seconds * 3 + 900)
        ref_rows = ref.result()
        our = ours.result()
    kl_job = ["ffjord-kl", "--ffjord-dir", args.ffjord_dir, "--density", density, "--ckpt", str(save / "final.pth"),
              "--eval-n", str(args.eval_n), *model_args(args)]
    ref_kl = run_child(kl_job, 3600)
    lines = [
        f"`{density}`: {args.seconds:g} s of training time each (evaluation excluded), both run at the same time, one "
        f"thread each; same model as above. KL(p‖q) ± standard error on {args.eval_n} samples of ctflows' exact "
        f"density with exact divergence, eval atol = rtol = {args.eval_tol:g}. ctflows extra flags: "
        f"`{' '.join(args.ours_extra) or 'none'}`. {machine_line()}.",
        "",
        "| code | iterations | s / iter | KL (nats) | eval NFE |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    t = sum(r[0] for r in ref_rows)
    if ref_kl and "error" not in ref_kl:
        lines.append(f"| FFJORD reference | {len(ref_rows)} | {t / len(ref_rows):.3f} | {ref_kl['kl']:.4f} ± {ref_kl['kl_se']:.4f} | {ref_kl['eval_nfe']} |")
    else:
        lines.append(f"| FFJORD reference | {len(ref_rows)} | {t / len(ref_rows):.3f} | failed | |")
    if our and "error" not in our:
        lines.append(f"| ctflows | {our['iterations']} | {our['sec_per_iter']:.3f} | {our['kl']:.4f} ± {our['kl_se']:.4f} | {our['eval_nfe']} |")
    else:
        lines.append("| ctflows | failed | | | |")
    return "\n".join(lines)


def ffjord_kl(args: argparse.Namespace) -> dict:
    """Load the reference's checkpoint with the reference's own builder and score it on our exact density."""
    import torch

    import ctflows

    torch.set_num_threads(1)
    sys.path.insert(0, str(Path(args.ffjord_dir).resolve()))
    from train_misc import build_model_tabular, count_nfe, create_regularization_fns, set_cnf_options, standard_normal_logprob

    ckpt = torch.load(args.ckpt, map_location="cpu", weights_only=False)
    fargs = ckpt["args"]
    fargs.test_atol = fargs.test_rtol = args.eval_tol
    reg_fns, _ = create_regularization_fns(fargs)
    model = build_model_tabular(fargs, 2, reg_fns)
    set_cnf_options(fargs, model)
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    density = ctflows.get_density(args.density)
    x = density.sample(args.eval_n, generator=torch.Generator().manual_seed(12345))
    with torch.no_grad():
        z, delta = model(x.float(), torch.zeros(x.shape[0], 1))
        log_q = (standard_normal_logprob(z).sum(1, keepdim=True) - delta).squeeze(1).double()
    diff = density.log_prob(x).double() - log_q
    return {"kl": float(diff.mean()), "kl_se": float(diff.std() / math.sqrt(diff.numel())), "eval_nfe": int(count_nfe(model))}
