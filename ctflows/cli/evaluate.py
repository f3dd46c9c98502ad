"""``ctflows evaluate``: NLL, and KL where the density is known or bits/dim on images, of a saved model (with NFE for CNFs)."""
from __future__ import annotations

import argparse
from pathlib import Path

from ctflows.cli.dataset import is_file_argument, load_dataset
from ctflows.core.stats import count_stats
from ctflows.errors import CheckpointError, ConfigurationError
from ctflows.training import evaluate, load
from ctflows.training.checkpoint import read_metadata


def run(args: argparse.Namespace) -> int:
    """Execute ``ctflows evaluate`` with parsed ``args``; returns the exit status."""
    flow = load(args.checkpoint, map_location="cpu")
    if not callable(getattr(flow, "log_prob", None)):
        raise CheckpointError(f"{args.checkpoint} holds a {type(flow).__name__}, which has no log_prob; give a model written by ctflows train")
    metadata = read_metadata(args.checkpoint)
    trained_seed = int(metadata.get("seed", 0))
    # train and compare score with their seed + 1 (ctflows.cli.measure): by default the same points and noise;
    # a model saved from Python without a seed keeps the default it always had, 0
    seed = args.seed if args.seed is not None else trained_seed + 1 if "seed" in metadata else 0
    if args.data is None:
        if "data" not in metadata:
            raise ConfigurationError(f"{args.checkpoint} does not say what data it was trained on; give --data NAME|FILE")
        # The file the model was trained on: evaluate on the same held-out 20% that train/compare used.
        trained_on = metadata["data"]
        if is_file_argument(trained_on) and not Path(trained_on).is_file():
            raise ConfigurationError(
                f"{args.checkpoint} was trained on {trained_on}, which is not there from {Path.cwd()} (the path is "
                "as it was given to ctflows train); run from that directory, or give --data FILE"
            )
        data = load_dataset(trained_on, trained_seed)
    else:
        data = load_dataset(args.data, seed, split=not is_file_argument(args.data))
    if "dim" in metadata and metadata["dim"] != data.dim:
        raise ConfigurationError(f"the model was trained on {metadata['dim']}-dimensional data but {data.name} has {data.dim} dimensions")
    result = evaluate(flow, data.test, n=args.n, seed=seed, levels=data.levels)
    what = f"{result['n']} {'samples of' if data.density is not None else 'images of' if data.is_image else 'rows of'} {data.name}"
    # On images the density is that of the dequantized pixels scaled to [0, 1): bits/dim below is the image's score.
    per = " per image, of the dequantized pixels scaled to [0, 1)" if data.is_image else ""
    print(f"NLL = {result['nll']:.4f} ± {result['nll_se']:.4f} nats{per}, on {what}")
    if "bpd" in result:
        print(f"bits/dim = {result['bpd']:.4f} ± {result['bpd_se']:.4f} on the held-out {data.name}")
    if "kl" in result:
        print(f"KL(p || q) = {result['kl']:.4f} ± {result['kl_se']:.4f} nats")
    nfe = count_stats(flow).get("nfe_forward")
    if nfe:
        print(f"NFE of the last log_prob batch: {nfe}")
    return 0
