"""Shared pieces of ``benchmarks/cnf.py``: the model, child processes, the machine line, the docs block."""
from __future__ import annotations

import argparse
import json
import platform
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "cnf.py"
# benchmarks/cnf.py's defaults, FFJORD's train_toy configuration, for scripts that build the model without its flags.
FFJORD_TOY_MODEL = argparse.Namespace(
    hidden=[64, 64, 64], activation="tanh", layer="concatsquash", method="dopri5", tol=1e-5, eval_tol=1e-5,
    end_time=0.5, fixed_end_time=False, no_seminorm=False,
)


def build_flow(dim: int, args: argparse.Namespace, *, adjoint: bool, divergence: str):
    """FFJORD's toy model by default: one CNF, concat-squash 64-64-64, dopri5, learned T (0.5 at start)."""
    import ctflows

    return ctflows.cnf(
        dim, tuple(args.hidden), activation=args.activation, layer=args.layer, method=args.method,
        atol=args.tol, rtol=args.tol, eval_atol=args.eval_tol, eval_rtol=args.eval_tol, adjoint=adjoint,
        divergence=divergence, eval_divergence="exact", end_time=args.end_time,
        learn_end_time=not args.fixed_end_time, seminorm=not args.no_seminorm,
        regularization=("kinetic_energy", "jacobian_frobenius") if getattr(args, "regularize", False) else None,
        compile_field=getattr(args, "compile_field", False),
        warm_start_step=not getattr(args, "no_warm_start", False),
        end_time_jitter=getattr(args, "steer", 0.0),
    )


def model_args(args: argparse.Namespace) -> list[str]:
    """The model / optimiser flags of ``args`` as a child's command line."""
    out = [
        "--hidden", *map(str, args.hidden), "--activation", args.activation, "--layer", args.layer,
        "--method", args.method, "--tol", repr(args.tol), "--eval-tol", repr(args.eval_tol),
        "--end-time", repr(args.end_time), "--kinetic", repr(args.kinetic), "--frobenius", repr(args.frobenius),
        "--lr", repr(args.lr), "--seed", str(args.seed), "--device", args.device, "--weight-schedule", args.weight_schedule,
    ]
    if getattr(args, "mode", "") not in ("table", "memory"):
        out += ["--batch", str(args.batch)]
    if args.fixed_end_time:
        out.append("--fixed-end-time")
    if args.no_seminorm:
        out.append("--no-seminorm")
    if getattr(args, "compile_field", False):
        out.append("--compile-field")
    if getattr(args, "no_warm_start", False):
        out.append("--no-warm-start")
    if getattr(args, "adjoint", None) is not None and args.mode in ("quality", "rnode"):
        out += ["--adjoint", args.adjoint, "--divergence", args.divergence, "--objective", args.objective,
                "--eval-n", str(args.eval_n), "--warmup-frac", repr(args.warmup_frac)]
    return out


def run_child(argv: list[str], timeout: float) -> dict | None:
    """``python cnf.py argv`` in a fresh process; its last stdout line parsed as JSON (None on timeout)."""
    try:
        proc = subprocess.run([sys.executable, str(SCRIPT), *argv], capture_output=True, text=True, timeout=timeout,
                              env={**__import__("os").environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    except subprocess.TimeoutExpired:
        print(f"timeout: {' '.join(argv)}", file=sys.stderr)
        return None
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        # A child killed by a signal (the out-of-memory killer's SIGKILL) leaves no traceback to quote.
        err = f"killed by signal {-proc.returncode}" if proc.returncode < 0 else (proc.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"failed: {' '.join(argv)}\n  {err}", file=sys.stderr)
        return {"error": err}
    result = json.loads(lines[-1])
    print(f"done: {' '.join(argv[:12])} -> {result}", file=sys.stderr, flush=True)
    return result


def run_children(jobs: list[list[str]], parallel: int, timeout: float) -> list[dict | None]:
    with ThreadPoolExecutor(max_workers=max(1, min(parallel, 2))) as pool:
        return list(pool.map(lambda job: run_child(job, timeout), jobs))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_line(device: str = "cpu") -> str:
    import os

    import torch

    where = f"CUDA {torch.cuda.get_device_name()}" if device.startswith("cuda") else f"CPU {cpu_model()} ({os.cpu_count()} cores)"
    return f"Machine: {where}, torch {torch.__version__}, 1 thread per process"


def update_docs(path: Path, key: str, block: str, family: str = "cnf") -> None:
    """Replace the text between ``<!-- family:key -->`` and ``<!-- /family:key -->`` (appended if missing).

    ``family`` names the benchmark script the block belongs to (``cnf``, ``discrete``).
    """
    begin, end = f"<!-- {family}:{key} -->", f"<!-- /{family}:{key} -->"
    text = path.read_text() if path.exists() else ""
    new = f"{begin}\n{block}{end}"
    if begin in text and end in text:
        text = re.sub(re.escape(begin) + r".*?" + re.escape(end), lambda _: new, text, flags=re.S)
    else:
        text = text.rstrip() + ("\n\n" if text else "") + new + "\n"
    path.write_text(text)
