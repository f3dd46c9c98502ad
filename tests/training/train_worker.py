"""A training run in its own process, for the crash-and-resume and torchrun tests (not a test module).

    python train_worker.py --model realnvp --out DIR [--checkpoint DIR] [--resume]
                           [--kill-at-step K | --kill-in-write N] [--batch-size B] [--steps S] [--double]
                           [--ema-decay BETA] [--rank-offset] [--seconds S] [--slow-rank-step X]
                           [--huge-batch N --on-nonfinite POLICY] [--custom-objective] [--rank0-stops-at K [--callback-on-rank0-only]]
                           [--rank0-raises-at K]

Writes the final parameters to ``OUT/params.pt`` (rank 0) and every rank's to ``OUT/params_rank{R}.pt``;
``--rank-offset`` adds the rank to every initial parameter (ranks that start apart). ``--seconds S`` trains for S
seconds instead of ``--steps``; ``--slow-rank-step X`` makes every optimizer step of rank 1 take X seconds longer
(after the step's last collective, so the ranks' clocks run apart). Each rank's history goes to
``OUT/history_rank{R}.json``. ``--huge-batch N`` scales the N-th batch drawn by 1e300, so that its loss overflows
on every rank (float64), and ``--on-nonfinite`` is fit's policy for it. ``--custom-objective`` trains by
maximum likelihood written as a plain function (an objective fit does not know). ``--rank0-stops-at K``: the
callback asks to stop after step K on rank 0 only (``--callback-on-rank0-only``: the other ranks have none);
``--rank0-raises-at K``: it raises an error there, on rank 0 only. ``--kill-at-step K`` SIGKILLs the process after
step K; ``--kill-in-write N`` SIGKILLs it halfway through writing its N-th checkpoint file.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import signal
import time
from pathlib import Path

import torch

import ctflows
from ctflows.training import fit


def build(model: str) -> ctflows.Flow:
    torch.manual_seed(0)
    if model == "realnvp":
        return ctflows.models.realnvp(2, blocks=4, hidden=(16, 16), seed=0)
    if model == "cnf":
        # A fixed-step solver: adaptive steps would depend on which points share a batch.
        return ctflows.models.cnf(2, hidden=(16, 16), adjoint=True, method="rk4", step_size=0.25)
    raise SystemExit(f"unknown model {model}")


def mean_nll(flow: ctflows.Flow, x: torch.Tensor, context: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    nll = -flow.log_prob(x, context).mean()
    return nll, nll


class HugeBatch:
    """A density whose ``nth`` batch is scaled by 1e300: finite points whose float64 loss overflows."""

    def __init__(self, density, nth: int) -> None:
        self.density, self.nth, self.calls, self.dim = density, nth, 0, density.dim

    def sample(self, n: int, **kwargs) -> torch.Tensor:
        self.calls += 1
        x = self.density.sample(n, **kwargs)
        return x * 1e300 if self.calls == self.nth else x

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return self.density.log_prob(x)


def die_halfway_through_write(nth: int) -> None:
    """Make the nth torch.save into an open file write half its bytes, then SIGKILL this process."""
    real_save, calls = torch.save, [0]

    def save(obj, f, *args, **kwargs):
        if hasattr(f, "write"):
            calls[0] += 1
            if calls[0] == nth:
                buffer = io.BytesIO()
                real_save(obj, buffer, *args, **kwargs)
                f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
                f.flush()
                os.kill(os.getpid(), signal.SIGKILL)
        return real_save(obj, f, *args, **kwargs)

    torch.save = save


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="realnvp")
    parser.add_argument("--out", required=True)
    parser.add_argument("--checkpoint")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--kill-at-step", type=int)
    parser.add_argument("--kill-in-write", type=int)
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--double", action="store_true", help="float64 model")
    parser.add_argument("--ema-decay", type=float)
    parser.add_argument("--rank-offset", action="store_true")
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--slow-rank-step", type=float, default=0.0)
    parser.add_argument("--huge-batch", type=int)
    parser.add_argument("--on-nonfinite", default="skip")
    parser.add_argument("--custom-objective", action="store_true")
    parser.add_argument("--rank0-stops-at", type=int)
    parser.add_argument("--callback-on-rank0-only", action="store_true")
    parser.add_argument("--rank0-raises-at", type=int)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.kill_in_write:
        die_halfway_through_write(args.kill_in_write)

    def callback(step: int, history) -> bool:
        if step == args.kill_at_step:
            os.kill(os.getpid(), signal.SIGKILL)
        if step == args.rank0_raises_at and os.environ.get("RANK", "0") == "0":
            raise RuntimeError(f"the callback failed at step {step} on rank 0")
        return step == args.rank0_stops_at and os.environ.get("RANK", "0") == "0"

    flow = build(args.model)
    if args.double:
        flow = flow.double()
    rank = int(os.environ.get("RANK", "0"))
    if args.rank_offset:
        with torch.no_grad():
            for param in flow.parameters():
                param.add_(rank)

    class SlowOnRankOne(torch.optim.AdamW):
        def step(self, closure=None):
            if rank == 1:
                time.sleep(args.slow_rank_step)
            return super().step(closure)

    data = ctflows.data.get_density("eight_gaussians")
    if args.huge_batch:
        data = HugeBatch(data, args.huge_batch)
    history = fit(flow, data, steps=None if args.seconds else args.steps, seconds=args.seconds,
                  batch_size=args.batch_size, lr=1e-2, seed=3, progress=False, checkpoint_dir=args.checkpoint,
                  checkpoint_every=5 if args.checkpoint else None, resume=args.resume,
                  callback=None if args.callback_on_rank0_only and rank != 0 else callback,
                  ema_decay=args.ema_decay, optimizer=SlowOnRankOne if args.slow_rank_step else "adamw",
                  on_nonfinite=args.on_nonfinite, objective=mean_nll if args.custom_objective else "likelihood")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / f"history_rank{rank}.json").write_text(json.dumps(history.to_dict()))
    final = {k: v.detach().clone() for k, v in flow.state_dict().items()}
    torch.save(final, Path(args.out) / f"params_rank{rank}.pt")
    if rank == 0:
        torch.save(final, Path(args.out) / "params.pt")


if __name__ == "__main__":
    main()
