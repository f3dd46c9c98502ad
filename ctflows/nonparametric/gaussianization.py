"""Rotation-based iterative Gaussianization (Laparra, Camps-Valls & Malo 2011), fitted without gradients.

    φ = M_K ∘ R_K ∘ … ∘ M_1 ∘ R_1 ∘ M_0,        log p(x) = log N(φ(x); 0, I) + Σ_k log|det ∂M_k|

* **Marginal Gaussianization** M_k: every coordinate through Φ⁻¹ ∘ F_j with F_j a logistic-mixture CDF
  fitted to the current training points (:meth:`MarginalGaussianization.from_data`: kernels at the
  column's quantiles, scales from the quantile spacing). Afterwards each coordinate is close to N(0, 1);
  what is left is dependence between coordinates.
* **Rotation** R_k (log-det 0): ``"pca"``, the principal axes of the current points (Laparra's choice
  for speed of convergence; in 2-D after marginal Gaussianization these are always the ±45° axes), or
  ``"random"``, a Haar-random rotation. Rotating makes the remaining dependence visible to the next
  marginal step; by Laparra's Theorem the negentropy falls at every layer whose marginal fit is exact.
* **Stopping rule.** One layer is a rotation and a marginal map. The held-out mean log-likelihood is
  recorded after each layer; fitting stops when it has not improved for ``patience`` layers (or at
  ``max_steps``) and the chain is cut back to the best number of layers.

The result is an ordinary :class:`Flow` with a :class:`FitReport` in ``flow.report`` and exact ``log_prob``; ``sample``/``inverse`` invert each
marginal map by bracketed Newton. Marginal maps keep their kernels as parameters, so the fitted flow
can be fine-tuned by maximum likelihood afterwards, e.g. ``ctflows.fit(flow, data, steps=…)`` (Meng et al.
2020 train the same layers end to end); the rotations are buffers and stay fixed.
"""
from __future__ import annotations

import math
import time
from typing import Literal

import torch
from torch import Tensor

from ctflows.core.counts import non_negative_count, positive_count, real_setting
from ctflows.core.distributions import StandardNormal
from ctflows.core.flow import Flow
from ctflows.core.transform import Chain, Transform
from ctflows.errors import ConfigurationError
from ctflows.nonparametric.holdout import Patience, Pushed, split
from ctflows.nonparametric.marginal import MarginalGaussianization
from ctflows.nonparametric.progress import check_progress, finish_step, fitting_bar
from ctflows.nonparametric.report import FitReport
from ctflows.nonparametric.rotation import pca_rotation, random_rotation


def fit_gaussianization(
    data: Tensor,
    *,
    max_steps: int = 100,
    rotation: Literal["pca", "random"] = "random",
    kernels: int = 32,
    bandwidth: float = 2.0,
    validation_fraction: float = 0.2,
    patience: int = 20,
    generator: torch.Generator | None = None,
    progress: bool | None = None,
) -> Flow:
    """Fit a density to ``data [N, D]`` by rotation-based iterative Gaussianization: ``-> Flow`` (base N(0, I)).

    Args:
        data: training points ``[N, D]``, float32 or float64 (half precision is refused); the model has their
            dtype and device.
        max_steps: the most (rotation, marginal) steps after the first marginal map.
        rotation: ``"pca"`` or ``"random"`` (drawn from ``generator``).
        kernels, bandwidth: of each marginal map, see :meth:`MarginalGaussianization.from_data`.
        validation_fraction: share of ``data`` held out for the stopping rule.
        patience: steps without a held-out improvement before stopping.
        generator: a CPU ``torch.Generator`` (or None: torch's global one) for the split and the random rotations.
        progress: a tqdm bar on stderr with the held-out L per step; ``None`` shows it only on a terminal.

    The returned flow is in ``eval()`` mode and carries ``flow.report``, a :class:`FitReport` (mean
    log-likelihoods after 0, 1, … steps, 0 being the first marginal map alone, before the cut).
    Reference: Laparra, Camps-Valls & Malo, "Iterative Gaussianization: from ICA to random rotations",
    IEEE TNN 2011.
    """
    owner = "fit_gaussianization"
    if rotation not in ("pca", "random"):
        raise ConfigurationError(f"{owner}: rotation must be 'pca' or 'random', got {rotation!r}")
    max_steps = non_negative_count(owner, "max_steps", max_steps)
    check_progress(owner, progress)
    # Checked here, not only in the layer, so that the message names the function the user called.
    kernels = positive_count(owner, "kernels", kernels)
    bandwidth = real_setting(owner, "bandwidth", bandwidth, "a finite number > 0", lambda v: 0 < v < math.inf)
    start = time.perf_counter()
    train, val = split(data, validation_fraction, generator, owner=owner)
    pushed = Pushed(train, val)
    layers: list[Transform] = [MarginalGaussianization.from_data(train, kernels, bandwidth=bandwidth)]
    pushed.push(layers[0])
    report = FitReport("gaussianization", prefix_layers=1, layers_per_step=2)
    stopper = Patience(patience, initial=report.record(*pushed.log_likelihoods()), owner=owner)
    with fitting_bar(owner, max_steps, progress) as bar:
        for _ in range(max_steps):
            x = pushed.train
            turn = pca_rotation(x) if rotation == "pca" else random_rotation(x.shape[1], generator=generator, dtype=x.dtype)
            pushed.push(turn.to(x.device))
            marginal = MarginalGaussianization.from_data(pushed.train, kernels, bandwidth=bandwidth)
            pushed.push(marginal)
            layers += [turn, marginal]
            if finish_step(bar, report, pushed, stopper):
                break
    report.steps = stopper.best_step
    report.seconds = time.perf_counter() - start
    kept = layers[: 1 + 2 * report.steps]
    flow = Flow(Chain(kept), StandardNormal(data.shape[1])).to(dtype=data.dtype, device=data.device)
    flow.report = report
    return flow.eval()

