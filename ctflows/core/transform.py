"""The one interface every layer keeps: an invertible map from data to base with its log-determinant.

    forward:  x -> z = f(x),      log|det ∂f/∂x|        (data -> base, the "normalizing" direction)
    inverse:  z -> x = f⁻¹(z),    log|det ∂f⁻¹/∂z|      (= minus the forward log-det at x)

Shapes: ``x`` and ``z`` are ``[batch, *event_shape]``, log-dets ``[batch]``, context ``[batch, c]``.
"""
from __future__ import annotations

import functools
import inspect
from typing import Any, Iterable

from torch import Tensor, nn

from ctflows.core.validation import check_context, check_instance, check_placement, check_tensor, placement
from ctflows.errors import ConfigurationError, InputError


class Transform(nn.Module):
    """Base class of invertible layers.

    Subclasses implement ``_forward`` and ``_inverse``; the public ``forward`` and ``inverse`` check their
    input once (shape, finiteness, context) and then call them. Composite transforms call their parts'
    underscored methods so a model checks its input once, not once per layer.

    Attributes:
        event_shape: shape of one sample, or ``None`` if the layer accepts any shape.
        context_features: width of the context the layer needs, or ``None`` if it takes none.
        stats: side information from the last call (NFE, iterations, regularizers), never part of the return.
    """

    event_shape: tuple[int, ...] | None = None
    context_features: int | None = None

    def __init__(self) -> None:
        super().__init__()
        self.stats: dict[str, Any] = {}

    def __getstate__(self) -> dict:
        # stats may hold tensors of the last call's graph (a CNF's regularizers, kept for the loss): copies and
        # pickles keep their values, detached, since deepcopy refuses non-leaf tensors.
        state = self.__dict__.copy()
        if "stats" in state:
            state["stats"] = _detached(state["stats"])
        return state

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Map data to base: ``x [B, *event] -> (z [B, *event], log|det J| [B])``."""
        self.check(x, context)
        return self._forward(x, context)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Map base to data: ``z [B, *event] -> (x [B, *event], log|det J_inverse| [B])``."""
        self.check(z, context, name="inverse input", inverse=True)
        return self._inverse(z, context)

    def check(
        self, x: Tensor, context: Tensor | None, *, name: str = "input", inverse: bool = False, context_checked: bool = False
    ) -> None:
        """Raise :class:`~ctflows.errors.InputError` if ``x`` or ``context`` cannot be fed to this layer.

        Besides shape and finiteness, both must be on the layer's device and have its floating dtype, and a
        context is refused by a layer that takes none (see ``core/validation.py`` for why). ``context_checked``: the
        caller (a Chain or Flow around this layer) has checked the context already, so it is not scanned again.
        A layer that adds checks of its own overrides this with the same signature and passes every keyword on to
        ``super().check`` (as :class:`~ctflows.image.Logit` does); an override without ``context_checked`` still
        works (:func:`check_layer` calls it the old way).
        """
        owner = type(self).__name__
        device, dtype = placement(self)
        check_tensor(owner, x, self.event_shape, name=name, device=device, dtype=dtype)
        if not context_checked:
            check_context(owner, context, self.context_features, x.shape[0], device=device, dtype=dtype)

    def _forward(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def _inverse(self, z: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        raise NotImplementedError


def _detached(value: Any) -> Any:
    """``value`` with every tensor in it (through dicts, lists and tuples) detached from its graph."""
    if isinstance(value, Tensor):
        return value.detach()
    if isinstance(value, dict):
        return {k: _detached(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_detached(v) for v in value)
    return value


def check_layer(
    layer: Transform, x: Tensor, context: Tensor | None, *, name: str = "input", inverse: bool = False,
    context_checked: bool = False,
) -> None:
    """``layer.check(...)``, telling it the context is checked where its ``check`` takes ``context_checked``; an
    override written before that keyword is never passed it, true or false (and checks the context once more)."""
    if _takes_context_checked(type(layer)):
        layer.check(x, context, name=name, inverse=inverse, context_checked=context_checked)
    else:
        layer.check(x, context, name=name, inverse=inverse)


@functools.cache
def _takes_context_checked(cls: type) -> bool:
    parameters = inspect.signature(cls.check).parameters.values()
    return any(p.name == "context_checked" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def zeros_logdet(x: Tensor) -> Tensor:
    """A ``[batch]`` zero log-det on ``x``'s device and dtype."""
    return x.new_zeros(x.shape[0])


class Chain(Transform):
    """Composition ``f = f_K ∘ … ∘ f_1``: forward runs the layers in order, inverse in reverse.

    log|det J_f(x)| = Σ_k log|det J_{f_k}(x_{k-1})|. The chain's stats map each layer's index to its stats.
    """

    def __init__(self, *layers: Transform) -> None:
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        if not layers:
            raise ConfigurationError("Chain needs at least one layer")
        for i, layer in enumerate(layers):
            check_instance("Chain", f"layer {i}", layer, Transform, "ActNorm(2)")
        self.layers = nn.ModuleList(layers)
        shapes = [layer.event_shape for layer in layers if layer.event_shape is not None]
        self.event_shape = shapes[0] if shapes else None
        end = chained_shape(layers)
        if end is not None and self.event_shape is not None and end != tuple(self.event_shape):
            self.out_shape = end  # the chain changes the shape (a squeeze): where z comes out
        contexts = {layer.context_features for layer in layers} - {None}
        if len(contexts) > 1:
            raise ConfigurationError(f"Chain: layers disagree on the context width: {sorted(contexts)}")
        self.context_features = contexts.pop() if contexts else None

    def check(
        self, x: Tensor, context: Tensor | None, *, name: str = "input", inverse: bool = False, context_checked: bool = False
    ) -> None:
        # The end a tensor enters decides its expected shape (layers such as squeeze change it).
        end = self.layers[-1] if inverse else self.layers[0]
        # The chain checks the context once, against the one width its layers share, not the end layer again.
        check_layer(end, x, context if end.context_features is not None else None, name=name, inverse=inverse,
                    context_checked=True)
        # The end layer may hold no floating tensors (a permutation); the chain's dtype still binds.
        device, dtype = placement(self)
        check_placement("Chain", x, device, dtype, name=name)
        if not context_checked:
            check_context("Chain", context, self.context_features, x.shape[0], device=device, dtype=dtype)

    def _forward(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        return forward_through(self.layers, x, context)

    def _inverse(self, z: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        total = zeros_logdet(z)
        for layer in reversed(self.layers):
            z, logdet = layer._inverse(z, context)
            total = total + logdet
        return z, total

    @property
    def stats(self) -> dict[str, Any]:  # type: ignore[override]
        return {str(i): layer.stats for i, layer in enumerate(self.layers) if layer.stats}

    @stats.setter
    def stats(self, value: dict[str, Any]) -> None:
        pass  # derived from the layers

    def __iter__(self) -> Iterable[Transform]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)


def forward_through(layers: Iterable[Transform], x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """``layers`` applied in order to ``x [B, *event]`` (inputs unchecked): ``(z, summed log-det [B])``; none: identity."""
    total = zeros_logdet(x)
    for layer in layers:
        x, logdet = layer._forward(x, context)
        total = total + logdet
    return x, total


def output_shape(layer: Transform) -> tuple[int, ...] | None:
    """The shape of one sample leaving ``layer`` forward (``out_shape`` if it reshapes, else ``event_shape``)."""
    shape = getattr(layer, "out_shape", layer.event_shape)
    return tuple(shape) if shape is not None else None


def chained_shape(layers: Iterable[Transform]) -> tuple[int, ...] | None:
    """The shape leaving the last of ``layers``; a ConfigurationError where one layer cannot take the previous one's output."""
    shape = None
    for i, layer in enumerate(layers):
        if layer.event_shape is None:
            continue  # takes any shape and keeps it
        if shape is not None and tuple(layer.event_shape) != shape:
            raise ConfigurationError(
                f"Chain: layer {i} ({type(layer).__name__}) takes points of shape {tuple(layer.event_shape)}, but the "
                f"layers before it give {shape}; build every layer for the shape it receives"
            )
        shape = output_shape(layer)
    return shape


def flat_layers(transform: Transform) -> list[Transform]:
    """The layers of ``transform`` in forward order, nested Chains expanded."""
    if isinstance(transform, Chain):
        return [leaf for layer in transform.layers for leaf in flat_layers(layer)]
    return [transform]


class Inverse(Transform):
    """The inverse of a layer: ``Inverse(f).forward = f.inverse`` and vice versa."""

    def __init__(self, transform: Transform) -> None:
        super().__init__()
        check_instance("Inverse", "transform", transform, Transform, "LULinear(2)")
        self.transform = transform
        # Forward it takes what the layer gives, and gives what the layer takes (a reshaping layer swaps them).
        self.event_shape = output_shape(transform)
        if self.event_shape != (tuple(transform.event_shape) if transform.event_shape is not None else None):
            self.out_shape = tuple(transform.event_shape)
        self.context_features = transform.context_features

    def check(
        self, x: Tensor, context: Tensor | None, *, name: str = "input", inverse: bool = False, context_checked: bool = False
    ) -> None:
        try:
            check_layer(self.transform, x, context, name=name, inverse=not inverse, context_checked=context_checked)
        except InputError as error:  # the layer called was the inverse: say so, or the message names one never called
            layer, colon, message = str(error).partition(": ")
            raise type(error)(f"Inverse({layer}): {message}" if colon else f"Inverse: {error}") from None

    def _forward(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        return self.transform._inverse(x, context)

    def _inverse(self, z: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        return self.transform._forward(z, context)

    @property
    def stats(self) -> dict[str, Any]:  # type: ignore[override]
        return self.transform.stats

    @stats.setter
    def stats(self, value: dict[str, Any]) -> None:
        pass


def sum_except_batch(x: Tensor) -> Tensor:
    """Sum a ``[batch, ...]`` tensor over all but its first dimension: ``-> [batch]``."""
    return x.reshape(x.shape[0], -1).sum(dim=1)


__all__ = ["Transform", "Chain", "Inverse", "zeros_logdet", "sum_except_batch"]
