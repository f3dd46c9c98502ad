"""``ctflows sample``: draw samples from a saved model into a .csv or .npy file (and optionally a 2-D histogram,
or for an image model a grid of the sampled images)."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from ctflows.cli.dataset import plot_bounds
from ctflows.cli.figures import image_rows
from ctflows.errors import CheckpointError, ConfigurationError
from ctflows.training import load
from ctflows.viz import sample_panel, side_by_side


def run(args: argparse.Namespace) -> int:
    """Execute ``ctflows sample`` with parsed ``args``; returns the exit status."""
    out = Path(args.out)
    if out.suffix.lower() not in (".csv", ".npy"):
        raise ConfigurationError(f"--out {args.out}: give a file name ending in .csv or .npy")
    if args.plot is not None and Path(args.plot).suffix.lower() != ".png":
        raise ConfigurationError(f"--plot {args.plot}: give a file name ending in .png")
    flow = load(args.checkpoint, map_location="cpu")
    if not callable(getattr(flow, "sample", None)):
        raise CheckpointError(f"{args.checkpoint} holds a {type(flow).__name__}, which cannot sample; give a model written by ctflows train")
    flow.eval()
    with torch.no_grad():
        drawn = flow.sample(args.n, generator=torch.Generator().manual_seed(args.seed)).cpu()
    samples = drawn.reshape(args.n, -1)  # images are written one flattened image per row
    if args.plot is not None and drawn.dim() != 4 and samples.shape[1] != 2:  # before anything is written
        raise ConfigurationError(f"--plot draws 2-D samples; these have {samples.shape[1]} dimensions")
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".npy":
        with open(out, "wb") as file:  # np.save would append ".npy" to a name ending in ".NPY"
            np.save(file, samples.numpy())
    else:
        np.savetxt(out, samples.numpy(), delimiter=",", fmt="%.7g")
    print(f"Wrote {args.n} samples of dimension {samples.shape[1]} to {out}")
    if args.plot is not None and drawn.dim() == 4:
        print(f"Images: {image_rows({f'{args.n} samples': drawn}, None, Path(args.plot), Path(args.checkpoint).name)}")
    elif args.plot is not None:
        path = side_by_side([sample_panel(f"{args.n} samples", samples, plot_bounds(samples), bins=100)], args.plot)
        print(f"Histogram: {path}")
    return 0
