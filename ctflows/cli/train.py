"""``ctflows train``: train one model; write its checkpoint, metrics, loss curve and (2-D) density/sample figure.

Output directory:
    model.pt            the trained model with its settings as metadata (``ctflows sample/evaluate`` read it)
    checkpoint/         fit's resumable training state (``training_state.pt``, ``model.pt``)
    metrics.json        the measurements of :mod:`ctflows.cli.measure`
    loss.png            the training loss per step
    density.png         true density | data samples, and the model's density | samples | map (2-D data)
    samples.png         held-out images and the model's samples (images)

Under ``torchrun --nproc_per_node=N -m ctflows.cli train ...`` the training is data-parallel (see
:func:`ctflows.training.fit`); only rank 0 prints, measures and writes.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ctflows.cli.dataset import load_dataset, plot_bounds
from ctflows.cli.figures import figure_grid, image_rows, model_panels, truth_panels
from ctflows.cli.leftovers import file_stamps, left_over_note
from ctflows.cli.measure import Budget, fit_overrides, measure, quality, train
from ctflows.cli.models import check_models_suit_data, model_spec
from ctflows.training import save
from ctflows.training.arguments import check_device
from ctflows.training.distributed import is_main_process
from ctflows.viz import loss_curves

REFERENCE_POINTS = 20000


def run(args: argparse.Namespace) -> int:
    """Execute ``ctflows train`` with parsed ``args``; returns the exit status."""
    spec = model_spec(args.model)
    data = load_dataset(args.data, args.seed, image_batch=args.batch_size)
    check_models_suit_data([args.model], data.is_image, data.name, data.shape)
    device = check_device("--device", args.device)
    budget = Budget.from_options(args.steps, args.minutes, default_steps=args.default_steps)
    out = Path(args.out)
    earlier = file_stamps(out)
    out.mkdir(parents=True, exist_ok=True)
    if is_main_process():
        print(f"Training {args.model} ({spec.summary}) on {data.name} (D = {data.dim}) for {budget.describe()}", flush=True)
    trained = train(args.model, data, budget, seed=args.seed, device=device, checkpoint_dir=out / "checkpoint",
                    overrides=fit_overrides(args))
    if not is_main_process():
        return 0  # under torchrun every rank trained its share; rank 0 alone measures and writes
    row, samples = measure(trained, data, eval_n=args.eval_samples, seed=args.seed)
    metadata = {"model": args.model, "data": args.data, "dim": data.dim, "seed": args.seed, "steps": row["steps"]}
    save(trained.flow, out / "model.pt", metadata=metadata)
    (out / "metrics.json").write_text(json.dumps({**metadata, **row}, indent=2) + "\n", encoding="utf-8")
    loss_curves({args.model: trained.history.losses}, out / "loss.png")
    if data.dim == 2:
        reference = data.reference(REFERENCE_POINTS, args.seed)
        bounds = plot_bounds(reference)
        rows = [truth_panels(data, bounds, reference, args.grid), model_panels(args.model, trained.flow, samples, reference, bounds, args.grid)]
        figure_grid(rows, out / "density.png", f"{args.model} on {data.name}")
    if data.is_image:
        image_rows({f"held-out {data.name}": data.test, args.model: samples}, data.levels, out / "samples.png", f"{args.model} on {data.name}")
    print(f"{row['steps']} steps in {row['train_seconds']:.1f} s; {quality(row)}")
    print(f"Model: {out / 'model.pt'}  (outputs in {out})")
    stale = left_over_note(out, earlier)
    if stale:
        print(f"Note: {stale}")
    return 0
