"""The ``ctflows`` command: argument parsing, and one-line errors instead of tracebacks.

    ctflows train    --data NAME|FILE --model MODEL [--steps N | --minutes M] [TRAINING] [--seed S]
                     [--device cpu|cuda] --out DIR
    ctflows compare  --data NAME|FILE --models a,b,... [--steps N | --minutes M] [TRAINING] [--seed S] --out DIR
    ctflows sample   CHECKPOINT [--n N] --out FILE.csv|FILE.npy [--plot FILE.png]
    ctflows evaluate CHECKPOINT [--data NAME|FILE] [--n N]
    ctflows data list

TRAINING: ``--lr LR --batch-size B --schedule cosine|constant --ema-decay BETA``, any of them, for every model
(each model's own settings otherwise). ``--data digits`` (8×8 images, bits/dim) takes the image models ``glow`` and ``cnf-image``; the others take vectors.

Every mistake a user can make (an unknown name, a missing or malformed file, an impossible budget)
ends with one line on stderr and exit status 1 (2 for malformed arguments), never a traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Sequence

import torch

from ctflows.cli.arguments import (
    OneLineParser, int_at_least, non_negative_int, open_unit_interval, positive_int, positive_minutes, positive_number,
    seed_value,
)
from ctflows.cli.models import DEFAULT_IMAGE_MODELS, DEFAULT_MODELS, MODELS
from ctflows.errors import CtflowsError
from ctflows.training.schedule import SCHEDULES

def _add_training_arguments(
    parser: argparse.ArgumentParser, *, default_steps: int | None = None, default_minutes: float | None = None
) -> None:
    """The options every training command shares; its budget without --steps or --minutes is one of the defaults."""
    parser.set_defaults(default_steps=default_steps, default_minutes=default_minutes)
    parser.add_argument("--data", required=True,
                        help="a built-in density (see `ctflows data list`), the 8x8 images `digits`, or a .csv/.npy file")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=positive_int,
                        help=f"optimizer steps per model{f' (default {default_steps})' if default_steps else ''}")
    budget.add_argument("--minutes", type=positive_minutes,
                        help=f"wall-clock training budget per model{f' (default {default_minutes:g})' if default_minutes else ''}")
    parser.add_argument("--lr", type=positive_number,
                        help="peak learning rate for every model (default: each model's own, e.g. 1e-2 for cnf, 5e-3 for realnvp)")
    parser.add_argument("--batch-size", type=positive_int,
                        help="points (or images) per step for every model (default: each model's own, e.g. 256 for cnf, 512 for realnvp, 128 images)")
    parser.add_argument("--schedule", choices=SCHEDULES, help="learning rate after the warm-up (default: cosine decay over the budget)")
    parser.add_argument("--ema-decay", type=open_unit_interval, metavar="BETA",
                        help="evaluate and save an exponential moving average of the parameters with this decay, e.g. 0.99 (default: none)")
    parser.add_argument("--seed", type=seed_value, default=0, help="seeds initialisation, batches and evaluation (default 0)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where to train: cpu (default) or cuda, the current GPU; under torchrun each process its own")
    parser.add_argument("--out", required=True, help="output directory (created if needed)")
    parser.add_argument("--eval-samples", type=int_at_least(2), default=20000,
                        help="points drawn from a built-in density for KL / NLL, or at most this many held-out images (default 20000)")
    parser.add_argument("--grid", type=positive_int, default=150, help="grid points per side in density plots (default 150)")


def build_parser() -> argparse.ArgumentParser:
    """The parser for every subcommand; each sets ``args.run``, the function that executes it."""
    from ctflows.cli import compare, data, evaluate, sample, train

    parser = OneLineParser(prog="ctflows", description="Train, compare, sample and evaluate normalizing flows.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    models = ", ".join(MODELS)

    p = commands.add_parser("train", help="train one model; writes checkpoints, a loss curve, density and sample plots")
    _add_training_arguments(p, default_steps=2000)
    p.add_argument("--model", required=True, help=f"one of: {models}")
    p.set_defaults(run=train.run)

    p = commands.add_parser("compare", help="train several models on the same data, seed and budget; write a report")
    _add_training_arguments(p, default_minutes=1.0)
    p.add_argument("--models", help=f"comma-separated, from: {models} (default {DEFAULT_MODELS}; {DEFAULT_IMAGE_MODELS} on images)")
    p.add_argument("--frames", type=non_negative_int, default=16,
                   help="frames of each CNF's density animation; 0 or 1 for none (default 16)")
    p.add_argument("--animation-grid", type=positive_int, default=64, help="grid points per side in animations (default 64)")
    p.set_defaults(run=compare.run)

    p = commands.add_parser("sample", help="draw samples from a saved model")
    p.add_argument("checkpoint", help="a model file written by train or compare (trusted files only: it is a pickle)")
    p.add_argument("--n", type=positive_int, default=1000, help="number of samples (default 1000)")
    p.add_argument("--out", required=True, help="where to write them: a .csv or .npy file")
    p.add_argument("--plot", help="also save a 2-D histogram of the samples (a grid of them for an image model) to this .png")
    p.add_argument("--seed", type=seed_value, default=0, help="seeds the draw: the same seed gives the same samples (default 0)")
    p.set_defaults(run=sample.run)

    p = commands.add_parser("evaluate", help="NLL (and KL where the density is known) of a saved model")
    p.add_argument("checkpoint", help="a model file written by train or compare")
    p.add_argument("--data", help="a built-in density or a test file (default: the data the model was trained on)")
    p.add_argument("--n", type=positive_int, default=20000, help="points drawn from a built-in density (default 20000)")
    p.add_argument("--seed", type=seed_value, default=None,
                   help="seeds the points drawn and the images' dequantization (default: the one train used for "
                        "metrics.json, the model's seed + 1, so the numbers match; 0 for a model saved without a seed)")
    p.set_defaults(run=evaluate.run)

    p = commands.add_parser("data", help="built-in densities")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", help="list the built-in densities with a description of each").set_defaults(run=data.run)
    return parser


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line on ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse has printed its one line (or the help)
        return int(exit_.code or 0)
    args.argv = argv
    # Flows this size run several times faster on one thread than on two competing ones (README, "Measured").
    torch.set_num_threads(1)
    run: Callable[[argparse.Namespace], int] = args.run
    prog = f"ctflows {args.command}"
    try:
        return run(args)
    except CtflowsError as error:
        print(f"{prog}: error: {_one_line(error)}", file=sys.stderr)
    except BrokenPipeError:  # the reader went away (`ctflows data list | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as error:  # an output path that cannot be written, a full disk
        print(f"{prog}: error: {_one_line(error)}", file=sys.stderr)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    return 1


if __name__ == "__main__":
    sys.exit(main())
