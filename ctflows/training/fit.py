"""Training a flow, by maximum likelihood (default) or another objective such as flow matching:

    loss = −(1/B) Σ_b log q(x_b | c_b)  +  Σ_name w_name · term_name

where the terms are the differentiable regularizers the layers report from the same forward pass
(:func:`ctflows.core.stats.regularization_terms`, e.g. a CNF's kinetic energy; Finlay et al. 2020).
Other objectives (:mod:`ctflows.training.objectives`) replace the likelihood term.
"""
from __future__ import annotations

import math
import sys
import time
from typing import Any, Callable

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ctflows.core.stats import count_stats, regularization_terms
from ctflows.errors import ConfigurationError, TrainingError
from ctflows.training.data_source import batch_stream, make_generator, placement
from ctflows.training.evaluate import evaluate
from ctflows.training.history import History
from ctflows.training.objectives import MaximumLikelihood, Objective, resolve_objective
from ctflows.training.schedule import check_schedule, make_scheduler

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam}

Callback = Callable[[int, History], "bool | None"]


def fit(
    flow: nn.Module,
    data: Any,
    *,
    steps: int = 2000,
    batch_size: int = 512,
    lr: float = 5e-3,
    weight_decay: float = 0.0,
    clip_grad: float | None = 1.0,
    schedule: str = "cosine",
    warmup: int | float = 0.3,
    optimizer: str | type[torch.optim.Optimizer] = "adamw",
    regularization: dict[str, float] | None = None,
    eval_data: Any = None,
    eval_every: int | None = None,
    eval_samples: int = 10000,
    seed: int | None = None,
    progress: bool | None = None,
    callback: Callback | None = None,
    device: torch.device | str | None = None,
    objective: str | Objective = "likelihood",
) -> History:
    """Train ``flow`` by minibatch maximum likelihood; returns the :class:`History` of the run.

    Args:
        flow: a :class:`~ctflows.core.Flow`; trained in place (moved to ``device`` first if given).
        data: a toy density, a Tensor ``[N, *event]``, an ``(x, context)`` pair or a DataLoader
            (see :mod:`ctflows.training.data_source`).
        steps: optimizer steps. batch_size: points per step (density samples / tensor rows).
        lr: peak learning rate. weight_decay: decoupled (AdamW) weight decay.
        clip_grad: max gradient norm (``None``: no clipping; the norm is still recorded).
        schedule: ``"cosine"`` (decay to 0 at the last step) or ``"constant"``; ``warmup``: linear
            warm-up before it, in steps (int) or as a fraction of ``steps`` (float; see
            :mod:`ctflows.training.schedule`).

    The defaults (peak lr 5e-3, 30% warm-up, cosine decay, gradient norm clipped at 1) were chosen on
    eight Gaussians with the default ``realnvp``: over seeds 0–5 they gave KL 0.073–0.093 nats after
    2,000 steps at batch 512 (``benchmarks/realnvp_defaults.py``), where lr 1e-3 without warm-up and a
    norm clip of 10 gave 0.15 (seed 0).
        optimizer: ``"adamw"``, ``"adam"`` or a ``torch.optim.Optimizer`` class taking ``lr`` and ``weight_decay``.
        regularization: ``{term name: weight}``; every named term must be reported by some layer, else a
            :class:`ConfigurationError` is raised at the first step.
        eval_data: held-out data for :func:`ctflows.training.evaluate`, every ``eval_every`` steps (if set)
            and after the last step; ``eval_samples`` points are drawn when it is a density, the same
            points at every evaluation so that the numbers compare.
        seed: seeds the CPU generator behind density samples, shuffling and evaluation samples (not the
            model's initialisation or a layer's own noise, which use torch's global generator).
        progress: a tqdm bar on stderr with loss, steps/s and NFE; ``None`` shows it only on a terminal.
        callback: ``callback(step, history)`` after each step (1-based); returning True stops training.
        objective: ``"likelihood"`` (default), ``"flow_matching"`` (regression of a single CNF's field onto
            straight paths, with minibatch OT coupling; ``FlowMatching(coupling=..., sigma=...)`` for the
            options), or any callable ``(flow, x, context) -> (loss, nll or None)``. Regularization
            weights apply to the likelihood objective only.

    Before the optimizer is made, ``flow`` is run once on the first batch in ``train()`` mode under
    ``torch.no_grad()``, so that layers which create parameters lazily or initialise them from data
    (ActNorm) have done so; that batch is then also the first training batch.

    Raises:
        TrainingError: the loss or its gradient is NaN or infinite (the step is not applied).
    """
    # Everything is checked before the first forward pass, which can be costly (an ODE solve).
    _check_arguments(steps, batch_size, lr, clip_grad, eval_data, eval_every, regularization)
    check_schedule(schedule, steps, warmup)
    optimizer_cls = _optimizer_class(optimizer)
    objective = resolve_objective(objective)
    weights = dict(regularization or {})
    likelihood = isinstance(objective, MaximumLikelihood)
    if weights and not likelihood:
        raise ConfigurationError("fit: regularization weights apply to the likelihood objective only")
    if device is not None:
        flow.to(device)
    device_, dtype = placement(flow)
    generator = make_generator(seed)
    eval_seed = int(torch.randint(2**62, (1,), generator=generator))
    stream = batch_stream(data, batch_size, generator=generator, device=device_, dtype=dtype)

    flow.train()
    first = next(stream)
    if likelihood:  # flow matching trains a lone CNF, which has nothing to initialise from data
        with torch.no_grad():
            flow.log_prob(*first)
    params = [p for p in flow.parameters() if p.requires_grad]
    if not params:
        raise ConfigurationError("fit: the model has no trainable parameters")
    opt = optimizer_cls(params, lr=lr, weight_decay=weight_decay)
    scheduler = make_scheduler(opt, schedule, total=steps, warmup=warmup)

    history = History()
    start = time.perf_counter()
    show = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(total=steps, disable=not show, unit="step", file=sys.stderr, dynamic_ncols=True)
    try:
        for step in range(1, steps + 1):
            x, context = first if step == 1 else next(stream)
            flow.train()
            main, nll = objective(flow, x, context)
            terms = regularization_terms(flow) if likelihood else {}
            if step == 1:
                _check_terms_reported(weights, terms)
            loss = main + sum((w * terms[name] for name, w in weights.items()), torch.zeros_like(main))
            current_lr = opt.param_groups[0]["lr"]
            loss_value = float(loss.detach())
            if not math.isfinite(loss_value):
                raise TrainingError(_nonfinite_message("loss", loss_value, step, steps, current_lr, nll, terms))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, math.inf if clip_grad is None else clip_grad))
            if not math.isfinite(grad_norm):
                raise TrainingError(_nonfinite_message("gradient norm", grad_norm, step, steps, current_lr, nll, terms))
            opt.step()
            scheduler.step()
            counts = count_stats(flow)  # after backward, so adjoint solves' nfe_backward is in
            history.record_step(
                loss=loss_value, nll=math.nan if nll is None else float(nll.detach()), lr=current_lr, grad_norm=grad_norm,
                terms={k: float(v.detach()) for k, v in terms.items()}, counts=counts,
            )
            stop = callback is not None and bool(callback(step, history))
            if eval_data is not None and (step == steps or stop or (eval_every and step % eval_every == 0)):
                record = evaluate(flow, eval_data, n=eval_samples, seed=eval_seed)
                history.evals.append({"step": step, "time": time.perf_counter() - start, **record})
            bar.update(1)
            if show:
                nfe = {k: v for k, v in counts.items() if k.startswith("nfe")}
                held_out = _last_eval(history)
                bar.set_postfix(loss=f"{loss_value:.4f}", **held_out, **nfe, refresh=False)
            if stop:
                break
    finally:
        bar.close()
        history.wall_time = time.perf_counter() - start
    return history


def _last_eval(history: History) -> dict[str, str]:
    """The latest held-out numbers for the progress bar: KL where the density is known, else NLL."""
    if not history.evals:
        return {}
    last = history.evals[-1]
    return {"kl": f"{last['kl']:.4f}"} if "kl" in last else {"test_nll": f"{last['nll']:.4f}"}


def _optimizer_class(optimizer: str | type[torch.optim.Optimizer]) -> type[torch.optim.Optimizer]:
    if isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer):
        return optimizer
    if isinstance(optimizer, str) and optimizer.lower() in OPTIMIZERS:
        return OPTIMIZERS[optimizer.lower()]
    raise ConfigurationError(f"fit: optimizer must be one of {sorted(OPTIMIZERS)} or an Optimizer class, got {optimizer!r}")


def _check_arguments(
    steps: int, batch_size: int, lr: float, clip_grad: float | None, eval_data: Any, eval_every: int | None,
    regularization: dict[str, float] | None,
) -> None:
    for name, value in (("steps", steps), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigurationError(f"fit: {name} must be a positive int, got {value!r}")
    if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
        raise ConfigurationError(f"fit: lr must be a positive number, got {lr!r}")
    if clip_grad is not None and not clip_grad > 0:
        raise ConfigurationError(f"fit: clip_grad must be positive or None, got {clip_grad!r}")
    if eval_every is not None:
        if eval_data is None:
            raise ConfigurationError("fit: eval_every is set but eval_data is None; pass held-out data to evaluate on")
        if isinstance(eval_every, bool) or not isinstance(eval_every, int) or eval_every < 1:
            raise ConfigurationError(f"fit: eval_every must be a positive int, got {eval_every!r}")
    for name, weight in (regularization or {}).items():
        if not isinstance(weight, (int, float)) or not math.isfinite(weight):
            raise ConfigurationError(f"fit: the regularization weight for {name!r} must be a finite number, got {weight!r}")


def _check_terms_reported(weights: dict[str, float], terms: dict[str, Tensor]) -> None:
    missing = sorted(weights.keys() - terms.keys())
    if missing:
        reported = sorted(terms) or "none"
        raise ConfigurationError(
            f"fit: regularization names {missing} but no layer reported such a term (reported: {reported}). "
            "Continuous layers report a term only when built with it, e.g. CNF(..., regularization=('kinetic_energy',))."
        )


def _nonfinite_message(
    what: str, value: float, step: int, steps: int, lr: float, nll: Tensor | None, terms: dict[str, Tensor]
) -> str:
    first = [] if nll is None else [f"nll={float(nll.detach()):.4g}"]
    parts = ", ".join(first + [f"{k}={float(v.detach()):.4g}" for k, v in terms.items()])
    return (
        f"fit: the {what} is {value} at step {step} of {steps} ({parts}); the step was not applied. "
        f"Try a lower learning rate (lr is {lr:.3g}), a warmup, or a smaller clip_grad, and check the data for outliers."
    )
