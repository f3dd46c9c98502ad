"""Training a flow, by maximum likelihood (default) or another objective such as flow matching:

    loss = −(1/B) Σ_b log q(x_b | c_b)  +  Σ_name w_name · term_name

where the terms are the differentiable regularizers the layers report from the same forward pass
(:func:`ctflows.core.stats.regularization_terms`, e.g. a CNF's kinetic energy; Finlay et al. 2020).
Other objectives (:mod:`ctflows.training.objectives`) replace the likelihood term. The budget is a
number of steps, a number of seconds, or both; the run can be checkpointed and resumed bit for bit, it
survives non-finite steps, and under ``torchrun`` it trains data-parallel (:mod:`.distributed`).
"""
from __future__ import annotations

import gc
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from tqdm.auto import tqdm

from ctflows.continuous.first_step import first_step_states, load_first_step_states
from ctflows.continuous.matching import FlowMatching
from ctflows.core.stats import count_stats, detach_regularization_terms
from ctflows.errors import ConfigurationError, TrainingError
from ctflows.linear.actnorm import awaits_data_initialisation
from ctflows.training.averaging import ParameterAverage, check_decay, holding_average
from ctflows.training.arguments import (
    check_arguments, check_callback, check_checkpointing, check_device, check_eval_shape, check_model_and_seed,
    check_training_points, optimizer_class,
)
from ctflows.training.checkpoint import save
from ctflows.training.data_source import BatchStream, make_generator, placement
from ctflows.training.distributed import DataParallel, process_device
from ctflows.training.evaluate import evaluate
from ctflows.training.history import History
from ctflows.training.nonfinite import NonFiniteGuard
from ctflows.training.objectives import Objective, TrainingLoss, resolve_objective
from ctflows.training.schedule import Schedule, plain_warmup, warmup_fraction
from ctflows.training.training_state import (
    MODEL_FILE, capture_rng, read_state, remove_interrupted_writes, restore_rng, write_state,
)

Callback = Callable[[int, History], "bool | None"]


def fit(
    flow: nn.Module,
    data: Any,
    *,
    steps: int | None = 2000,
    seconds: float | None = None,
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
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    on_nonfinite: str = "skip",
    max_bad_steps: int = 10,
    distributed: bool | None = None,
    ema_decay: float | None = None,
) -> History:
    """Train ``flow`` by minibatch maximum likelihood; returns the :class:`History` of the run.

    Args:
        flow: a :class:`~ctflows.core.Flow`; trained in place (moved to ``device`` first if given; under
            ``torchrun``, ``"cuda"`` is each process's own GPU, ``cuda:LOCAL_RANK``).
        data: a toy density, a Tensor ``[N, *event]``, an ``(x, context)`` pair or a DataLoader
            (see :mod:`ctflows.training.data_source`).
        steps: optimizer steps (``None``: no step limit; then ``seconds`` must be given).
        seconds: wall-clock budget of the training steps, as :attr:`History.trained_seconds` counts them
            (set-up, evaluations, callbacks and checkpoint writes not counted; under ``torchrun`` each step
            counts as long as the slowest rank took); training stops at whichever of ``steps`` and ``seconds``
            runs out first, and the learning-rate schedule is laid over that budget (:mod:`ctflows.training.schedule`).
        batch_size: points per step (density samples / tensor rows); under ``torchrun`` the global batch.
        lr: peak learning rate. weight_decay: decoupled (AdamW) weight decay.
        clip_grad: max gradient norm (``None`` or ``math.inf``: no clipping; the norm is still recorded).
        schedule: ``"cosine"`` (decaying toward 0 over the budget; with S steps and no warm-up, step s takes
            ``½ (1 + cos(π s / S))`` of ``lr``) or ``"constant"``; ``warmup``: linear
            warm-up before it, in steps (int) or as a fraction of the budget (float).
        optimizer: ``"adamw"``, ``"adam"`` or a ``torch.optim.Optimizer`` class taking ``lr`` and ``weight_decay``.
        regularization: ``{term name: weight}``; every named term must be reported by some layer, else a
            :class:`ConfigurationError` is raised at the first step.
        eval_data: held-out data for :func:`ctflows.training.evaluate`, every ``eval_every`` steps (if set)
            and after the last step; ``eval_samples`` points are drawn when it is a density, the same
            points at every evaluation so that the numbers compare.
        seed: seeds the CPU generator behind density samples, shuffling and evaluation samples (not the
            model's initialisation or a layer's own noise, which use torch's global generator).
        progress: a tqdm bar on stderr with loss, steps/s and NFE; ``None`` shows it only on a terminal.
        callback: ``callback(step, history)`` after each step (1-based); returning True stops training
            (under ``torchrun``: on any rank stops every rank, and it may be given on some ranks only; only rank
            0's history has evaluations).
        objective: ``"likelihood"`` (default), ``"flow_matching"`` (regression of a single CNF's field onto
            straight paths, with minibatch OT coupling; fixed layers may precede the CNF;
            ``FlowMatching(coupling=..., sigma=..., times=...)`` for the options), or any callable
            ``(flow, x, context) -> (loss, nll or None)``. Regularization weights apply to the likelihood
            objective only.
        checkpoint_dir: where ``training_state.pt`` (model, optimizer, schedule position, history, data
            stream and RNG states; :mod:`.training_state`) and ``model.pt`` (for :func:`ctflows.training.load`)
            are written atomically: every ``checkpoint_every`` steps, at the end, on Ctrl-C or an error
            between steps (in the callback or an evaluation), and before stopping for non-finite steps.
        resume: continue from ``checkpoint_dir/training_state.pt`` if it exists (else start afresh). With
            the same arguments, device and deterministic kernels, an interrupted and resumed run ends with
            the same parameters, to the bit, as an uninterrupted one (density and tensor data); ``seed=None``
            takes the saved run's seed, and an evaluation the interruption cut short is done first.
        on_nonfinite: when the loss or gradient norm is NaN/Inf: ``"skip"`` the step (no update),
            ``"restore"`` the last checkpoint's model and optimizer state too, or ``"raise"`` at once.
            Skipped steps count toward ``steps`` and are listed in ``history.skipped``.
        max_bad_steps: stop with a :class:`TrainingError` after this many non-finite steps in a row.
        distributed: data-parallel over a ``torch.distributed`` process group (``None``: when launched by
            ``torchrun``). Each rank trains on its share of the same global batch; rank 0 alone writes.
        ema_decay: keep an exponential moving average θ̄ of the trainable parameters over the applied steps,
            θ̄ ← θ̄ + w (θ − θ̄) with w = (1 − β)/(1 − βⁿ) at the n-th, β = ``ema_decay`` (bias-corrected, so the
            initial values carry no weight; :mod:`.averaging`). Evaluations use θ̄, ``model.pt``
            holds θ̄, and ``flow`` ends the run holding θ̄ (the training state keeps θ and θ̄, so resuming is
            exact; a run stopped by an error or Ctrl-C leaves ``flow`` with θ, unless it came in the very last
            exchange, once the run was saved). With flow matching it was
            measured with ``schedule="constant"``, where it helped on every 2-D toy tried
            (``docs/benchmarks.md``, "Beyond maximum likelihood").

    The defaults (peak lr 5e-3, 30% warm-up, cosine decay, gradient norm clipped at 1) were chosen on
    eight Gaussians with the default ``realnvp``: over seeds 0–5 they gave KL 0.073–0.093 nats after
    2,000 steps at batch 512 (``benchmarks/realnvp_defaults.py``).

    Under maximum likelihood, before the optimizer is made, ``flow`` is run once on the first (global)
    batch in ``train()`` mode under ``torch.no_grad()``, so that layers which create parameters lazily or
    initialise them from data (ActNorm) have done so; that batch is then also the first training batch.

    Raises:
        TrainingError: too many non-finite steps in a row (or one, with ``on_nonfinite="raise"``).
        DataError: tensor training points ``[N, D]`` (D <= 256) that lie on a hyperplane, where the loss would
            fall without bound (:func:`~ctflows.training.arguments.check_training_points`); NaN or Inf in the data.
    """
    # Everything is checked before the first forward pass, which can be costly (an ODE solve).
    seed = check_model_and_seed("fit", flow, trained=True, seed=seed)
    steps, seconds, batch_size, lr, weight_decay, clip_grad, eval_every, eval_samples = check_arguments(
        steps, seconds, batch_size, lr, weight_decay, clip_grad, eval_data, eval_every, eval_samples, regularization
    )
    checkpoint_every = check_checkpointing(checkpoint_dir, checkpoint_every, resume)
    check_callback(callback)
    if ema_decay is not None:
        ema_decay = check_decay(ema_decay)
    plan = Schedule.build(schedule, warmup, steps=steps, seconds=seconds)
    optimizer_cls = optimizer_class(optimizer)
    loss_of = TrainingLoss(flow, resolve_objective(objective), dict(regularization or {}))
    if loss_of.weights and not loss_of.likelihood:
        raise ConfigurationError("fit: regularization weights apply to the likelihood objective only")
    guard = NonFiniteGuard(on_nonfinite, max_bad_steps)
    if device is not None:
        flow.to(process_device(check_device("fit", device)))
    device_, dtype = placement(flow)
    group = DataParallel(device_, enabled=distributed)
    finished, model = False, None
    try:
        if resume and group.main:
            remove_interrupted_writes(checkpoint_dir)
        saved = read_state(checkpoint_dir) if resume else None
        if seed is None and saved is not None:  # a resumed run keeps the seed it drew
            seed = int(saved["config"]["seed"])
        elif seed is None:  # every rank must draw the same global batches
            seed = group.broadcast_int(int(torch.randint(2**62, (1,))), device_)
        generator = make_generator(seed)
        eval_seed = int(torch.randint(2**62, (1,), generator=generator))
        stream = BatchStream(data, batch_size, generator=generator, device=device_, dtype=dtype)
        check_training_points(stream.points)
        if group.world > 1:
            if stream.uses_batch_size:  # a DataLoader batches by its own size: fit's batch_size is not used
                group.check_batch_size(batch_size)
            group.check_batches(stream.batch_sizes())  # before training, not at the end of the first epoch
        config = {"steps": steps, "seconds": seconds, "batch_size": batch_size, "lr": lr, "seed": seed,
                  "schedule": schedule, "warmup": plain_warmup(warmup), "processes": group.world, "weight_decay": weight_decay, "ema_decay": ema_decay,
                  "rows": stream.rows,  # other data would continue the saved row order, or index past its end
                  "objective": _name_of(loss_of.objective), "optimizer": optimizer_cls.__name__,
                  "clip_grad": None if clip_grad == math.inf else clip_grad,  # both mean "no clipping"
                  "regularization": {name: float(weight) for name, weight in sorted(loss_of.weights.items())}}

        flow.train()
        first = next(stream)
        check_eval_shape(eval_data, first[0])
        # Data-initialised layers (ActNorm) initialise here, before the DDP wrap and on the same batch on every
        # rank: under maximum likelihood always, under another objective where one waits for it (flow matching
        # trains a lone CNF, which has nothing to initialise, and a pass costs a solve).
        custom = not loss_of.likelihood and not isinstance(loss_of.objective, FlowMatching)
        if loss_of.likelihood or (custom and awaits_data_initialisation(flow)):
            with torch.no_grad():
                flow.log_prob(*first)
        params = [p for p in flow.parameters() if p.requires_grad]
        if not params:
            raise ConfigurationError("fit: the model has no trainable parameters")
        opt = optimizer_cls(params, lr=lr, weight_decay=weight_decay)
        history = History()
        if saved is not None:
            _check_same_run(saved["config"], config, checkpoint_dir)
            flow.load_state_dict(saved["model"])
            opt.load_state_dict(saved["optimizer"])
            stream.load_state_dict(saved["stream"])
            load_first_step_states(flow, saved.get("first_steps", {}))  # older states have none: cold starts
            history = History.from_dict(saved["history"])
            # The state's own entry: histories saved before History.trained_seconds existed do not have it.
            history.trained_seconds = float(saved["trained_seconds"])
            guard.resume_count(history.skipped, history.steps)
            eval_seed = int(saved["eval_seed"])
            restore_rng(saved["rng"])
        model = group.wrap(loss_of)
        # After the wrap: DDP has given every rank rank 0's parameters, so every rank averages the same iterates.
        average = _start_average(params, ema_decay, saved, checkpoint_dir)
        guard.remember(flow, opt, average)

        def checkpoint() -> None:
            if checkpoint_dir is not None:
                if group.main:
                    _write_checkpoint(
                        Path(checkpoint_dir), flow, opt, stream, history, eval_seed, config, average, last_step_seconds
                    )
                # Every rank, not only the one that writes: "restore" must send them all to the same state.
                guard.remember(flow, opt, average)

        def evaluate_if_due(last: bool) -> None:
            """Held-out numbers for the step just recorded, if it is due some and does not have them yet."""
            step = history.steps
            due = last or (eval_every and step % eval_every == 0)
            if group.main and eval_data is not None and step and due and not (history.evals and history.evals[-1]["step"] == step):
                with holding_average(average):
                    record = evaluate(flow, eval_data, n=eval_samples, seed=eval_seed)
                history.evals.append({"step": step, "time": history.trained_seconds, **record})

        start = time.perf_counter()
        show = group.main and (sys.stderr.isatty() if progress is None else progress)
        bar = tqdm(total=steps, initial=history.steps, disable=not show, unit="step", file=sys.stderr, dynamic_ncols=True)
        # The warm-up under a seconds budget counts the next step as long as the last: a resumed run knows it too.
        last_step_seconds = float(saved.get("last_step_seconds", 0.0)) if saved is not None else 0.0
        in_step = False
        try:
            evaluate_if_due(last=False)  # a resumed run first does the evaluation an interruption cut short
            while not plan.exhausted(history.steps, history.trained_seconds):
                step = history.steps + 1
                tick, in_step = time.perf_counter(), True
                x, context = first if (step == 1 and saved is None) else next(stream)
                factor = plan.factor(history.steps, history.trained_seconds, step_seconds=last_step_seconds)
                for group_ in opt.param_groups:
                    group_["lr"] = lr * factor
                flow.train()
                loss, nll, terms = model(*group.shard(x, context))
                logged = group.mean(torch.stack([loss.detach(), _or_nan(nll, loss), *(v.detach() for v in terms.values())]))
                loss_value, nll_value, *term_values = logged.tolist()  # one host sync per step
                grad_norm = math.nan
                if guard.finite(loss_value):
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    grad_norm = float(torch.nn.utils.clip_grad_norm_(params, math.inf if clip_grad is None else clip_grad))
                applied = guard.finite(loss_value, grad_norm)
                if applied:
                    opt.step()
                    if average is not None:
                        average.update()
                    guard.good_step()
                else:
                    history.skipped.append(step)
                counts = count_stats(flow)  # after backward, so adjoint solves' nfe_backward is in
                history.record_step(
                    loss=loss_value, nll=nll_value, lr=lr * factor, grad_norm=grad_norm,
                    terms=dict(zip(terms, term_values)), counts=counts,
                )
                # A skipped step never ran backward: its graph would otherwise live through the next forward.
                del loss, nll, terms
                detach_regularization_terms(flow)
                last_step_seconds = time.perf_counter() - tick
                if plan.seconds is not None:
                    # Every rank must count the same time, or they take different learning rates and one can
                    # stop while another waits for it in the next step's all-reduce; the slowest rank's is the
                    # time the synchronous step took.
                    last_step_seconds = group.maximum(last_step_seconds, device_)
                history.trained_seconds += last_step_seconds
                in_step = False  # the step is applied and recorded: a checkpoint now is consistent
                if not applied and guard.bad_step(flow, opt, average):  # the except clause below saves the state
                    raise TrainingError(_nonfinite_message(loss_value, grad_norm, step, steps, lr * factor, guard, checkpoint_dir))
                stop = callback is not None and bool(callback(step, history))
                if group.world > 1:
                    # A callback can decide from what rank 0 alone has (its evaluations), or be given on rank 0
                    # only: one rank stopping alone would leave the others waiting for it in the next all-reduce.
                    stop = group.maximum(float(stop), device_) > 0
                last = stop or plan.exhausted(history.steps, history.trained_seconds)
                evaluate_if_due(last)
                if checkpoint_every and step % checkpoint_every == 0 and not last:
                    checkpoint()
                bar.update(1)
                if show:
                    nfe = {k: v for k, v in counts.items() if k.startswith("nfe")}
                    bar.set_postfix(loss=f"{loss_value:.4f}", **_last_eval(history), **nfe, refresh=False)
                if stop:
                    break
            evaluate_if_due(last=True)  # also when a resumed run had no step left to take
            history.wall_time += time.perf_counter() - start
            checkpoint()
        except BaseException:
            # Ctrl-C, or an error in the callback or an evaluation: the state after the last completed step is
            # consistent (and worth keeping) only if no step was half applied, and only after a step: before
            # step 1 the stream is already past the first batch, which a resumed run would never train on.
            if average is not None:
                average.hold_own()  # a Ctrl-C or error as an exchange back began can have left θ̄ in place
            if not in_step and checkpoint_dir is not None and history.steps > 0:
                history.wall_time += time.perf_counter() - start
                checkpoint()
            raise
        finally:
            bar.close()
        if average is not None:  # the run is over and saved: the flow returned holds the average
            average.swap()
        finished = True
        return history
    finally:
        if group.enabled:
            # DDP sits in a reference cycle: left to the garbage collector it can outlive the process group
            # and be torn down at interpreter exit, where gloo can abort the process after a successful run.
            model = None
            gc.collect()
        group.close(barrier=finished)


def _write_checkpoint(
    directory: Path, flow: nn.Module, opt: torch.optim.Optimizer, stream: BatchStream, history: History,
    eval_seed: int, config: dict[str, Any], average: ParameterAverage | None, last_step_seconds: float,
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    write_state(directory, {
        "step": history.steps, "trained_seconds": history.trained_seconds, "last_step_seconds": last_step_seconds,
        "eval_seed": eval_seed, "config": config, "model": flow.state_dict(), "optimizer": opt.state_dict(),
        "history": history.to_dict(), "stream": stream.state_dict(), "rng": capture_rng(), "first_steps": first_step_states(flow),
        **({"average": average.state_dict()} if average is not None else {}),
    })
    with holding_average(average):  # the model users load is the averaged one
        save(flow, directory / MODEL_FILE, metadata={"step": history.steps, "trained_seconds": history.trained_seconds})


def _start_average(
    params: list[torch.Tensor], decay: float | None, saved: dict[str, Any] | None, directory: Any
) -> ParameterAverage | None:
    """The parameter average of this run (None without ``ema_decay``), with a resumed run's saved averages."""
    if decay is None:
        return None
    average = ParameterAverage(params, decay)
    if saved is not None:
        if "average" not in saved:
            raise ConfigurationError(
                f"fit: cannot resume from {directory} with ema_decay={decay}: that run kept no parameter average; "
                "resume without ema_decay, or start a new run in another checkpoint_dir"
            )
        average.load_state_dict(saved["average"])
    return average


def _name_of(objective: Any) -> str:
    """An objective as the run settings record it: a function's name, an object's repr where its class defines
    one (``"FlowMatching(coupling='ot', sigma=0.0, times='uniform')"``), else its class's name; never an address."""
    if hasattr(objective, "__qualname__"):
        return objective.__qualname__
    return repr(objective) if type(objective).__repr__ is not object.__repr__ else type(objective).__qualname__


def _check_same_run(saved: dict[str, Any], now: dict[str, Any], directory: Any) -> None:
    # A setting a checkpoint predates (weight_decay was added later) is not held against it.
    changed = {k: (saved[k], v) for k, v in now.items() if k in saved and not _same_setting(k, saved, now)}
    if changed:
        listed = ", ".join(f"{k}: {a!r} then, {b!r} now" for k, (a, b) in sorted(changed.items()))
        raise ConfigurationError(
            f"fit: cannot resume from {directory}: it was written by a run with other settings ({listed}); "
            "use the same arguments, or another checkpoint_dir for a new run"
        )


def _same_setting(key: str, saved: dict[str, Any], now: dict[str, Any]) -> bool:
    if key == "warmup":  # 2 steps of 10 and 0.2 are one schedule; compared as fractions of the budget
        return warmup_fraction(saved[key], saved["steps"]) == warmup_fraction(now[key], now["steps"])
    return saved[key] == now[key]


def _or_nan(value: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    return torch.full_like(like, math.nan) if value is None else value.detach()


def _last_eval(history: History) -> dict[str, str]:
    """The latest held-out numbers for the progress bar: KL where the density is known, else NLL."""
    if not history.evals:
        return {}
    last = history.evals[-1]
    return {"kl": f"{last['kl']:.4f}"} if "kl" in last else {"test_nll": f"{last['nll']:.4f}"}


def _nonfinite_message(
    loss: float, grad_norm: float, step: int, steps: int | None, lr: float, guard: NonFiniteGuard, directory: Any
) -> str:
    what = f"the loss is {loss}" if not math.isfinite(loss) else f"the gradient norm is {grad_norm}"
    budget = f" of {steps}" if steps is not None else ""
    saved = f" The last good state is in {directory}." if directory is not None else ""
    return (
        f"fit: {what} at step {step}{budget} ({guard.in_a_row} non-finite step(s) in a row; no update was applied). "
        f"Try a lower learning rate (lr is {lr:.3g}), a warmup, or a smaller clip_grad, and check the data for outliers.{saved}"
    )
