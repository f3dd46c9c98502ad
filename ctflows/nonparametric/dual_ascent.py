"""Density estimation by ascent on the log-likelihood with elementary radial maps (Tabak & Turner 2013).

    φ = E_K ∘ … ∘ E_1 ∘ W,        log p(x) = log N(φ(x); 0, I) + log|det ∂φ/∂x|

Procedure (Tabak & Vanden-Eijnden 2010's "dual ascent", in Tabak & Turner's discrete form):

* **Pre-whitening.** W maps the training points to zero mean and identity covariance
  (:func:`whitening_layer`, an LULinear), the best Gaussian fit, from which the ascent starts.
* **Elementary maps.** E_k is a localized radial expansion (:class:`RadialExpansion`)
  y = x0 + (1 + β e^{-|x - x0|²/2α²})(x - x0); its centre x0 is one of the current pushed training
  points drawn at random, its bandwidth α the distance from x0 to its ``neighbours``-th nearest pushed
  training point (so each map moves about that many points, wherever they are).
* **Step rule.** For L(β) = mean over training points of [log|det J_β| + log N(E_β(x))], the gradient g and
  curvature h < 0 at β = 0 are closed-form (:func:`radial_derivatives`); β = clip(-g/h, ±ε), the maximiser
  of the local quadratic model limited to the learning rate ε (small ε: smooth, near-identity maps).
  All points, training and held-out, are pushed through E_k and its log-det added to theirs.
* **Stopping rule.** The held-out mean log-likelihood is recorded after every map; fitting stops when it
  has not improved for ``patience`` maps (or at ``max_steps``), and the chain is cut back to the best.

The result is an ordinary :class:`Flow` (``Chain(W, E_1, …, E_K)`` to ``StandardNormal``) with a
:class:`FitReport` in ``flow.report`` (held-out L per step, steps kept, why it stopped): exact
``log_prob``, ``sample`` and ``inverse`` (each E_k inverts by 1-D root finding in the radius), and
every parameter can be fine-tuned afterwards by gradient (e.g. with :func:`ctflows.fit`).

Continuous-time limit: as ε → 0 with K ε fixed, the composition is the Euler discretisation of
dx/dt = v_t(x), with v_t the ascent direction of L in the space of velocity fields (the L²-gradient
of L, smoothed by the kernel family) — a continuous normalizing flow (CNF) whose log-density obeys
d log|det|/dt = ∇·v_t, exactly as :class:`ctflows.CNF` integrates it.
"""
from __future__ import annotations

import math
import time

import torch
from torch import Tensor

from ctflows.core.counts import non_negative_count, real_setting
from ctflows.core.distributions import StandardNormal
from ctflows.core.flow import Flow
from ctflows.core.transform import Chain, Transform
from ctflows.errors import ConfigurationError
from ctflows.nonparametric.ascent_step import radial_step
from ctflows.nonparametric.holdout import Patience, Pushed, split
from ctflows.nonparametric.progress import check_progress, finish_step, fitting_bar
from ctflows.nonparametric.report import FitReport
from ctflows.nonparametric.whitening import whitening_layer


def fit_dual_ascent(
    data: Tensor,
    *,
    max_steps: int = 5000,
    step_limit: float = 0.1,
    neighbours: float = 0.05,
    validation_fraction: float = 0.2,
    patience: int = 200,
    generator: torch.Generator | None = None,
    progress: bool | None = None,
) -> Flow:
    """Fit a density to ``data [N, D]`` by Tabak–Turner ascent with radial maps: ``-> Flow`` (base N(0, I)).

    Args:
        data: training points ``[N, D]``, float32 or float64 (half precision is refused); the model has their
            dtype and device.
        max_steps: the most elementary maps.
        step_limit: ε, the largest |β| of one map, in (0, 0.9] (every such map is invertible).
        neighbours: the bandwidth α of each map is the distance from its centre to the nearest
            ``neighbours`` (a fraction in (0, 1) of the training points, or a whole count ≥ 2, the centre
            included) of the pushed points.
        validation_fraction: share of ``data`` held out for the stopping rule.
        patience: maps without a held-out improvement before stopping.
        generator: a CPU ``torch.Generator`` (or None: torch's global one) for the split and the choice of centres.
        progress: a tqdm bar on stderr with the held-out L per step; ``None`` shows it only on a terminal.

    The returned flow is in ``eval()`` mode and carries ``flow.report``, a :class:`FitReport` (mean
    log-likelihoods after 0, 1, … maps, before the cut; ``extra["beta"]`` holds each map's β).
    Reference: Tabak & Turner, "A family of nonparametric density estimation algorithms", CPAM 2013.
    """
    owner = "fit_dual_ascent"
    step_limit = real_setting(owner, "step_limit", step_limit, "a number in (0, 0.9]", lambda v: 0 < v <= 0.9)
    max_steps = non_negative_count(owner, "max_steps", max_steps)
    check_progress(owner, progress)
    # The count includes the centre itself: 1 would give a zero radius, a spike that moves one point and overfits.
    neighbours = real_setting(owner, "neighbours", neighbours, "a fraction in (0, 1) or a whole count >= 2",
                              lambda v: 0 < v < 1 or (v >= 2 and v.is_integer()))
    start = time.perf_counter()
    train, val = split(data, validation_fraction, generator, owner=owner)
    k = int(neighbours) if neighbours >= 1 else max(2, math.ceil(neighbours * train.shape[0]))
    if k > train.shape[0]:
        raise ConfigurationError(
            f"{owner}: neighbours={neighbours:g} asks for {k} of {train.shape[0]} training points; "
            f"pass a count of at most {train.shape[0]} or a fraction in (0, 1)"
        )
    whiten = whitening_layer(train)
    pushed = Pushed(train, val)
    pushed.push(whiten)
    report = FitReport("dual_ascent", prefix_layers=1, layers_per_step=1, extra={"beta": []})
    report.record(*pushed.log_likelihoods())
    stopper = Patience(patience, initial=report.validation[0], owner=owner)
    layers: list[Transform] = [whiten]
    with fitting_bar(owner, max_steps, progress) as bar:
        for _ in range(max_steps):
            layer = radial_step(pushed.train, k, step_limit, generator)
            pushed.push(layer)
            layers.append(layer)
            report.extra["beta"].append(float(layer.beta.detach()))
            if finish_step(bar, report, pushed, stopper):
                break
    report.steps = stopper.best_step
    report.seconds = time.perf_counter() - start
    flow = Flow(Chain(layers[: 1 + report.steps]), StandardNormal(data.shape[1])).to(dtype=data.dtype, device=data.device)
    flow.report = report
    return flow.eval()

