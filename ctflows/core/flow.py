"""The density model: a transform to a base distribution.

    log p_x(x) = log p_z(f(x)) + log|det ∂f/∂x|          (Rezende & Mohamed 2015; Tabak & Turner 2013)
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ctflows.core.counts import positive_count
from ctflows.core.distributions import Distribution
from ctflows.core.transform import Chain, Transform, check_layer, output_shape
from ctflows.core.validation import check_context, check_generator, check_instance, check_tensor, placement
from ctflows.errors import ConfigurationError, InputError


class Flow(nn.Module):
    """A normalizing flow ``(transform, base)``.

    Args:
        transform: a :class:`Transform`, or a list of them (wrapped in a :class:`Chain`), data -> base.
        base: the base distribution, e.g. ``StandardNormal(d)``.

    ``forward(x, context) -> (z [B, *event], log p(x) [B])``; ``context`` is ``[B, c]`` for conditional models.
    """

    def __init__(self, transform: Transform | list[Transform], base: Distribution) -> None:
        super().__init__()
        if isinstance(transform, (list, tuple)):
            transform = Chain(*transform)
        check_instance("Flow", "transform", transform, Transform, "ActNorm(2) or a list of layers")
        check_instance("Flow", "base", base, Distribution, "StandardNormal(2)")
        self.transform = transform
        self.base = base
        end = output_shape(transform)
        if end is not None and end != tuple(base.event_shape):
            raise ConfigurationError(f"Flow: the transform ends in event shape {end} but the base has {tuple(base.event_shape)}")

    @property
    def event_shape(self) -> tuple[int, ...]:
        return tuple(self.transform.event_shape or self.base.event_shape)

    @property
    def context_features(self) -> int | None:
        return self.transform.context_features or self.base.context_features

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Latent and log-density: ``x [B, *event] -> (z [B, *event], log p(x) [B])``."""
        self._check(x, context)
        z, logdet = self.transform._forward(x, self._transform_context(context))
        return z, self.base.log_prob(z, context) + logdet

    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """Exact log-density (or the layers' documented estimate in ``train()``): ``[B, *event] -> [B]``."""
        return self.forward(x, context)[1]

    def sample(self, n: int, context: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``n`` samples ``[n, *event]``. A context of shape ``[c]`` is shared by all; ``[n, c]`` gives one row each."""
        return self.sample_and_log_prob(n, context, generator=generator, with_log_prob=False)[0]

    def sample_and_log_prob(
        self,
        n: int,
        context: Tensor | None = None,
        generator: torch.Generator | None = None,
        *,
        with_log_prob: bool = True,
    ) -> tuple[Tensor, Tensor | None]:
        """Samples and their log-density in one inverse pass: ``-> ([n, *event], [n])``.

        log p(x) = log p_z(z) - log|det ∂f⁻¹/∂z|.
        """
        # Any whole number (NumPy, 0-d torch), never a flag: sample(True) is a bug, not a request for one sample.
        n = positive_count("Flow.sample", "n", n, InputError)
        check_generator("Flow.sample", generator, placement(self)[0])
        context = self._expand_context(context, n)
        z = self.base.sample(n, context, generator=generator)
        x, logdet_inverse = self.transform._inverse(z, self._transform_context(context))
        if not with_log_prob:
            return x, None
        return x, self.base.log_prob(z, context) - logdet_inverse

    def _check(self, x: Tensor, context: Tensor | None) -> None:
        """Check an input and its context, the context against the model's ``context_features`` and under the
        model's name: the user called the Flow, and a message naming its inner Chain would send them looking for one."""
        checked = isinstance(x, Tensor) and x.dim() > 0  # else the transform's check says what is wrong with x
        if checked:
            device, dtype = placement(self)
            check_context("Flow", context, self.context_features, x.shape[0], device=device, dtype=dtype)
        check_layer(self.transform, x, self._transform_context(context), context_checked=checked)

    def _transform_context(self, context: Tensor | None) -> Tensor | None:
        # A conditional base behind an unconditional transform: the context is the base's alone.
        return context if self.transform.context_features is not None else None

    def _expand_context(self, context: Tensor | None, n: int) -> Tensor | None:
        """Check a sampling context and give it ``n`` rows: ``[c]`` or ``[1, c]`` is shared, ``[n, c]`` kept."""
        owner = "Flow.sample"
        features = self.context_features
        if features is None:
            check_context(owner, context, None, n)  # refuses a context the model would ignore
            return None
        if context is None:
            raise InputError(f"{owner}: this model is conditional; pass a context of shape [{features}] or [n, {features}]")
        if isinstance(context, Tensor) and context.dim() == 1:
            context = context.unsqueeze(0)
        device, dtype = placement(self)
        check_tensor(owner, context, (features,), name="context", device=device, dtype=dtype)
        if context.shape[0] == 1:
            return context.expand(n, -1)
        if context.shape[0] != n:
            raise InputError(f"{owner}: context has {context.shape[0]} rows; give 1 (shared) or n={n}")
        return context

    def stats(self) -> dict[str, Any]:
        """Side information from the last call of every layer that reported some (NFE, iterations, ...)."""
        return self.transform.stats
