"""``ctflows compare``: the same data, seed and budget for each model, then one report.

Output directory:
    report.md, report.json    the table (KL, test NLL or bits/dim, parameters, time, NFE, sampling speed) and settings
    figure.png                true density and data, then per model: density | samples | map (2-D data);
                              held-out images, then one row of samples per model (images)
    <model>_density.gif       a CNF's density carried from the data (t = 0) to the base (t = T) (2-D data)
    loss.png                  each model's training loss
    models/<model>.pt         the trained models (``ctflows sample/evaluate`` read them)
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ctflows.cli.dataset import load_dataset, plot_bounds
from ctflows.cli.figures import animate, figure_grid, image_rows, model_panels, truth_panels
from ctflows.cli.leftovers import file_stamps, left_over_note
from ctflows.cli.measure import Budget, fit_overrides, measure, quality, train
from ctflows.cli.models import DEFAULT_IMAGE_MODELS, DEFAULT_MODELS, check_models_suit_data, model_spec, parse_model_list
from ctflows.cli.report import REPORT_FILES, machine, write_report
from ctflows.errors import SolverError, TrainingError
from ctflows.training import save
from ctflows.training.arguments import check_device
from ctflows.viz import loss_curves

REFERENCE_POINTS = 20000


def run(args: argparse.Namespace) -> int:
    """Execute ``ctflows compare`` with parsed ``args``; returns 0, or 1 if some model failed to train."""
    data = load_dataset(args.data, args.seed, image_batch=args.batch_size)
    names = parse_model_list(args.models or (DEFAULT_IMAGE_MODELS if data.is_image else DEFAULT_MODELS))
    check_models_suit_data(names, data.is_image, data.name, data.shape)
    device = check_device("--device", args.device)
    budget = Budget.from_options(args.steps, args.minutes, default_minutes=args.default_minutes)
    out = Path(args.out)
    earlier = file_stamps(out)
    (out / "models").mkdir(parents=True, exist_ok=True)
    plots = data.dim == 2
    reference = data.reference(REFERENCE_POINTS, args.seed) if plots else None
    bounds = plot_bounds(reference) if plots else None
    panels = [truth_panels(data, bounds, reference, args.grid)] if plots else []
    rows, curves, animations, notes = [], {}, {}, []
    images = {f"held-out {data.name}": data.test} if data.is_image else {}  # figure rows: label -> images [n, C, H, W]
    print(f"Comparing {', '.join(names)} on {data.name} (D = {data.dim}), {budget.describe()} each, seed {args.seed}", flush=True)
    for i, name in enumerate(names, 1):
        print(f"[{i}/{len(names)}] {name}: training ...", flush=True)
        try:
            trained = train(name, data, budget, seed=args.seed, device=device, overrides=fit_overrides(args))
            row, samples = measure(trained, data, eval_n=args.eval_samples, seed=args.seed)
        except (SolverError, TrainingError) as error:  # one model failing should not lose the others' results
            message = " ".join(str(error).split())
            rows.append({"model": name, "error": message})
            print(f"[{i}/{len(names)}] {name}: failed: {message}", flush=True)
            continue
        rows.append(row)
        objective = model_spec(name).fit_options.get("objective", "likelihood")
        curves[name if objective == "likelihood" else f"{name} ({objective.replace('_', ' ')} loss)"] = trained.history.losses
        save(trained.flow, out / "models" / f"{name}.pt",
             metadata={"model": name, "data": args.data, "dim": data.dim, "seed": args.seed, "steps": row["steps"]})
        if data.is_image:
            images[name] = samples
        if plots:
            # A solve that fails on the plot grid costs this model that picture, not the comparison.
            stage = "density plot"
            try:
                panels.append(model_panels(name, trained.flow, samples, reference, bounds, args.grid))
                if model_spec(name).continuous and args.frames > 1:
                    stage = "density animation"
                    gif = animate(name, trained.flow, bounds, out / f"{name}_density.gif", args.frames, args.animation_grid)
                    animations[name] = gif.name
            except SolverError as error:
                notes.append(f"{name}: no {stage}: {' '.join(str(error).split())}")
                print(f"[{i}/{len(names)}] {name}: {stage} failed: {error}", flush=True)
        print(f"[{i}/{len(names)}] {name}: {row['steps']} steps in {row['train_seconds']:.1f} s, {quality(row)}", flush=True)
    figure, title = None, f"{data.name}: {budget.describe()} per model, seed {args.seed}"
    if plots and len(panels) > 1:
        figure = figure_grid(panels, out / "figure.png", title).name
    elif len(images) > 1:
        figure = image_rows(images, data.levels, out / "figure.png", title).name
    elif not plots and not data.is_image:
        notes.append(f"No plots: the data has {data.dim} dimensions and the figures are drawn for 2-D data only.")
    if curves:
        loss_curves(curves, out / "loss.png")
    if data.is_image:
        notes.append(image_split_note(data.train.images.shape[0], len(data.test), args.eval_samples))
    elif data.density is None:
        notes.append("Trained on 80% of the file's rows (shuffled with the seed) and tested on the other 20%.")
    stale = left_over_note(out, earlier, still_to_write=REPORT_FILES)
    if stale:
        notes.append(stale + ".")
        print(f"Note: {stale}", flush=True)
    header = {
        "data": args.data, "dim": data.dim, "known_density": data.density is not None, "image": data.is_image,
        "levels": data.levels, "seed": args.seed, "fit_overrides": fit_overrides(args),
        "budget": budget.describe(), "budget_steps": budget.steps, "budget_seconds": budget.seconds,
        "device": str(device), "machine": machine(), "command": "ctflows " + " ".join(args.argv),
        "figure": figure, "animations": animations, "loss_curve": "loss.png" if curves else None,
    }
    md, _ = write_report(out, header, rows, notes)
    print(f"Report: {md}  (table, figure and animations in {out})")
    return 1 if any(r.get("error") for r in rows) else 0


def image_split_note(trained: int, held_out: int, eval_samples: int) -> str:
    """The report's line on which images trained and which were scored (measure scores the first ``eval_samples``
    of the ``held_out`` ones, as the table's eval_points say)."""
    scored = min(eval_samples, held_out)
    tested = f"the last {held_out:,}" if scored == held_out else f"the first {scored:,} of the last {held_out:,}"
    return f"Trained on the first {trained:,} images (freshly dequantized each pass) and tested on {tested}."
