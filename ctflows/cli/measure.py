"""Training one model under a budget and measuring it the same way for every model.

Measured: parameters; training time and the median time per step; KL(p‖q) ± standard error where the
density is known and the test NLL ± standard error always (``ctflows.training.evaluate``), and for images
held-out bits/dim ± standard error (Theis et al. 2016); for CNFs the mean number of field evaluations (NFE)
per exact ``log_prob`` batch on the test points; and sampling speed, 10,000 samples (100 images) timed in
``eval()`` mode under ``no_grad``.
"""
from __future__ import annotations

import inspect
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ctflows.cli.dataset import Dataset
from ctflows.cli.models import build_model, model_spec
from ctflows.cli.report import plus_minus
from ctflows.core.stats import count_stats
from ctflows.training import History, evaluate, fit

SPEED_SAMPLES = 10_000
IMAGE_SPEED_SAMPLES = 100  # cnf-image draws about 80 digits/s on one CPU thread: 10,000 would take two minutes


@dataclass(frozen=True)
class Budget:
    """A training budget: ``steps``, ``seconds`` or both (training stops at whichever runs out first)."""

    steps: int | None = None
    seconds: float | None = None

    @classmethod
    def from_options(cls, steps: int | None, minutes: float | None, *, default_steps: int | None = None,
                     default_minutes: float | None = None) -> "Budget":
        """The budget given on the command line (``--steps`` or ``--minutes``), else the command's default."""
        if steps is None and minutes is None:
            steps, minutes = default_steps, default_minutes
        return cls(steps=steps, seconds=None if minutes is None else 60.0 * minutes)

    def describe(self) -> str:
        """``"2000 steps"``, ``"45 s"`` or both."""
        parts = ([f"{self.steps} steps"] if self.steps else []) + ([f"{self.seconds:g} s"] if self.seconds else [])
        return " or ".join(parts)


@dataclass
class Trained:
    """A trained model with its training record: ``history`` from ``fit`` and per-step wall times (s)."""

    name: str
    flow: nn.Module
    history: History
    step_seconds: list[float]
    settings: dict[str, Any]  # the FIT_OPTIONS it trained with (peak lr, batch size, schedule, ema_decay)


class _CountingFlow(nn.Module):
    """Wraps a flow so that each ``log_prob`` call's NFE is recorded (``evaluate`` sees an ordinary flow)."""

    def __init__(self, flow: nn.Module) -> None:
        super().__init__()
        self.flow = flow
        self.nfe: list[int] = []

    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        out = self.flow.log_prob(x, context)
        self.nfe.append(count_stats(self.flow).get("nfe_forward", 0))
        return out


FIT_OPTIONS = ("lr", "batch_size", "schedule", "ema_decay")  # fit's keyword arguments the command line sets


def fit_overrides(args: Any) -> dict[str, Any]:
    """The :data:`FIT_OPTIONS` given on the command line (``--lr``, ``--batch-size``, ...), to apply to every model."""
    return {key: getattr(args, key) for key in FIT_OPTIONS if getattr(args, key, None) is not None}


def train(
    name: str, data: Dataset, budget: Budget, *, seed: int, device: torch.device,
    checkpoint_dir: Path | None = None, progress: bool | None = None, overrides: dict[str, Any] | None = None,
) -> Trained:
    """Build model ``name`` for ``data`` and train it with ``fit`` under ``budget``.

    The model's own fit settings apply (:data:`~ctflows.cli.models.MODELS`), updated by ``overrides``
    (:func:`fit_overrides`). Image batches come from the data set (``load_dataset(..., image_batch=)``),
    whose batch size is what ``fit`` is told. File data are standardised by a fixed first layer (see
    :func:`~ctflows.cli.models.build_model`).
    """
    flow = build_model(name, data.shape, seed, standardize=data.file_points)
    options = {**model_spec(name).fit_options, **(overrides or {})}
    if data.is_image:
        options["batch_size"] = data.train.batch_size
    stamps = [time.perf_counter()]

    def tick(step: int, history: History) -> None:
        stamps.append(time.perf_counter())

    # Images stream from one seeded generator: each model starts it afresh, or the second of a comparison would
    # see other shuffles and noise than the first (and than ctflows train would give it).
    train_data = data.train.restarted() if data.is_image else data.train
    history = fit(flow, train_data, steps=budget.steps, seconds=budget.seconds, seed=seed, device=device,
                  progress=progress, callback=tick, checkpoint_dir=checkpoint_dir, **options)
    steps = [b - a for a, b in zip(stamps, stamps[1:])]
    defaults = {key: inspect.signature(fit).parameters[key].default for key in FIT_OPTIONS}
    settings = {**defaults, **{key: options[key] for key in FIT_OPTIONS if key in options}}
    rows = _training_rows(data)
    if rows is not None:  # a batch never holds more than the training rows (images)
        settings["batch_size"] = min(settings["batch_size"], rows)
    return Trained(name, flow, history, steps, settings)


def _training_rows(data: Dataset) -> int | None:
    """How many training points a finite data set has (None for a density: fresh samples every step)."""
    if data.is_image:
        return len(data.train.images)
    return data.train.shape[0] if isinstance(data.train, Tensor) else None


def _finite_or_none(value: Any) -> Any:
    return value if not isinstance(value, float) or math.isfinite(value) else None


def measure(trained: Trained, data: Dataset, *, eval_n: int, seed: int) -> tuple[dict[str, Any], Tensor]:
    """The report row for ``trained`` and the samples drawn to time sampling ``[n, *shape]``.

    On images the first ``eval_n`` held-out images are scored and ``IMAGE_SPEED_SAMPLES`` drawn.
    """
    flow, spec = trained.flow, model_spec(trained.name)
    counting = _CountingFlow(flow)
    test = data.test[:eval_n] if data.is_image else data.test
    result = evaluate(counting, test, n=eval_n, seed=seed + 1, levels=data.levels)
    flow.eval()
    generator = torch.Generator(device=next(flow.parameters()).device).manual_seed(seed + 2)
    count = IMAGE_SPEED_SAMPLES if data.is_image else SPEED_SAMPLES
    with torch.no_grad():
        start = time.perf_counter()
        samples = flow.sample(count, generator=generator)
        if samples.is_cuda:
            torch.cuda.synchronize()
        sample_seconds = time.perf_counter() - start
    row = {
        "model": trained.name,
        "description": spec.summary,
        "parameters": sum(p.numel() for p in flow.parameters() if p.requires_grad),
        "steps": trained.history.steps, **trained.settings,
        "train_seconds": trained.history.wall_time,
        "seconds_per_step": statistics.median(trained.step_seconds) if trained.step_seconds else None,
        "nll": result["nll"], "nll_se": result["nll_se"], "eval_points": result["n"], "exact": result["exact"],
        "kl": result.get("kl"), "kl_se": result.get("kl_se"), "bpd": result.get("bpd"), "bpd_se": result.get("bpd_se"),
        "eval_nfe": statistics.fmean(counting.nfe) if spec.continuous and counting.nfe else None,
        "samples_per_second": count / sample_seconds, "speed_samples": count,
        "skipped_steps": len(trained.history.skipped),
    }
    return {k: _finite_or_none(v) for k, v in row.items()}, samples.cpu()


def quality(row: dict[str, Any]) -> str:
    """A row's headline score: held-out bits/dim on images, else KL where the density is known, else test NLL."""
    # A value or its standard error may be None: not finite (an infinite NLL), or unknown from one point.
    if row.get("bpd") is not None:
        return f"{plus_minus(row['bpd'], row['bpd_se'], 4)} bits/dim"
    if row.get("kl") is not None:
        return f"KL {plus_minus(row['kl'], row['kl_se'], 4)} nats"
    return f"test NLL {plus_minus(row.get('nll'), row.get('nll_se'), 4)} nats"
