"""Velocity fields ``v(t, x, context)``: time-conditioned MLPs that drive a continuous normalizing flow.

    dx/dt = v(t, x[, context]),   x: [B, D],  t: scalar or [B],  context: [B, c]  ->  [B, D]

Every hidden layer sees the conditioning vector ``c(t) = [time features, context]``; the activations are
smooth (softplus, tanh, SiLU) because adaptive ODE solvers take tiny steps across kinks (Chen et al. 2018;
Grathwohl et al., FFJORD, 2019). The last layer starts scaled down so an untrained CNF is near the identity.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from ctflows.continuous.layers import ConcatLinear, ConcatSquashLinear
from ctflows.core.counts import optional_count, positive_count, real_setting
from ctflows.core.counts import widths as widths_of
from ctflows.errors import ConfigurationError

SMOOTH_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {"softplus": nn.Softplus, "tanh": nn.Tanh, "silu": nn.SiLU}


def smooth_activation(name: str, owner: str) -> nn.Module:
    """A new activation module for ``name`` in :data:`SMOOTH_ACTIVATIONS`; else an error naming ``owner``."""
    if not isinstance(name, str) or name not in SMOOTH_ACTIVATIONS:
        raise ConfigurationError(f"{owner}: activation {name!r} is not one of {sorted(SMOOTH_ACTIVATIONS)}")
    return SMOOTH_ACTIVATIONS[name]()


def _silu_derivative(pre: Tensor, out: Tensor) -> Tensor:
    s = torch.sigmoid(pre)
    return s * (1 + pre * (1 - s))


# σ'(pre) given pre and σ(pre), for pushing tangents through the activations.
_DERIVATIVES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "softplus": lambda pre, out: torch.sigmoid(pre),
    "tanh": lambda pre, out: 1 - out * out,
    "silu": _silu_derivative,
}
_LAYERS = {"concat": ConcatLinear, "concatsquash": ConcatSquashLinear}


class TimeIdentity(nn.Module):
    """Time as one feature: ``t -> [[t]]``; a scalar gives ``[1, 1]``, per-sample times ``[B]`` give ``[B, 1]``."""

    out_features = 1

    def forward(self, t: Tensor) -> Tensor:
        return t.reshape(-1, 1)


class FourierTime(nn.Module):
    """Fourier time features ``t -> [t, sin(ω_k t), cos(ω_k t)]``, ``ω_k = π 2^k``, ``k < K``: ``[1 or B, 2K+1]``.

    Fixed geometric frequencies as in Tancik et al. 2020 / Vaswani et al. 2017; they let a small MLP
    represent fields that change quickly in time.
    """

    def __init__(self, num_frequencies: int = 4) -> None:
        super().__init__()
        # At least one: with none the features are t alone, which ConcatMLP (TimeIdentity) gives by name.
        self.num_frequencies = positive_count(type(self).__name__, "num_frequencies", num_frequencies)
        self.out_features = 2 * self.num_frequencies + 1

    def forward(self, t: Tensor) -> Tensor:
        t = t.reshape(-1, 1)
        # Made in t's dtype each call: frequencies stored in float32 would stay rounded in a float64 model.
        omega = math.pi * 2.0 ** torch.arange(self.num_frequencies, dtype=t.dtype, device=t.device)
        angle = t * omega
        return torch.cat([t, torch.sin(angle), torch.cos(angle)], dim=-1)

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args, **kwargs) -> None:
        state_dict.pop(prefix + "omega", None)  # the frequencies' buffer of models saved before they were computed
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def __setstate__(self, state: dict) -> None:
        # A module pickled whole (ctflows.save) before the frequencies were computed holds them as a buffer.
        omega = state.get("_buffers", {}).pop("omega", None)
        if omega is not None:
            state.setdefault("num_frequencies", int(omega.numel()))
        super().__setstate__(state)


class VelocityField(nn.Module):
    """Base class: ``field(t, x, context=None) -> dx/dt`` with ``x [B, features]``, ``t`` a scalar or ``[B]``."""

    features: int
    context_features: int | None = None

    def forward(self, t: Tensor, x: Tensor, context: Tensor | None = None) -> Tensor:
        raise NotImplementedError


class TimeMLP(VelocityField):
    """An MLP whose every layer is conditioned on ``c = [time_embedding(t), context]``.

    h_0 = x,  h_{k+1} = act(L_k(h_k, c)),  v = L_K(h_K, c)   with L_k concat or concat-squash layers.

    Args:
        features: D, the width of ``x`` and of the output.
        hidden: hidden widths, e.g. ``(64, 64, 64)``.
        activation: ``"softplus"``, ``"tanh"`` or ``"silu"``.
        context_features: width of the context of a conditional flow, or ``None``.
        layer: ``"concat"`` or ``"concatsquash"``.
        time_embedding: module ``t -> [1, k]`` with attribute ``out_features``; default plain ``t``.
        init_scale: factor on the last layer's initial weights (its bias starts at 0); 0 gives v ≡ 0.
    """

    def __init__(
        self,
        features: int,
        hidden: Sequence[int] = (64, 64, 64),
        *,
        activation: str = "softplus",
        context_features: int | None = None,
        layer: str = "concatsquash",
        time_embedding: nn.Module | None = None,
        init_scale: float = 0.1,
    ) -> None:
        super().__init__()
        activation_module = smooth_activation(activation, type(self).__name__)
        if layer not in _LAYERS:
            raise ConfigurationError(f"{type(self).__name__}: layer {layer!r} is not one of {sorted(_LAYERS)}")
        features, hidden = positive_count(type(self).__name__, "features", features), widths_of(type(self).__name__, hidden)
        self.features = features
        self.context_features = optional_count(type(self).__name__, "context_features", context_features)
        self.time_embedding = time_embedding if time_embedding is not None else TimeIdentity()
        # Its width sizes every layer: read it here, not as an AttributeError deep in the constructor.
        embedded = getattr(self.time_embedding, "out_features", None)
        cond = positive_count(type(self).__name__, "time_embedding.out_features", embedded) + (context_features or 0)
        widths = [features, *hidden, features]
        self.layers = nn.ModuleList(_LAYERS[layer](a, b, cond) for a, b in zip(widths[:-1], widths[1:]))
        self.activation = activation_module
        self.activation_name = activation
        # A NaN or infinite scale would make every velocity NaN without an error.
        scale = real_setting(type(self).__name__, "init_scale", init_scale, "a finite number, e.g. 0.1 (0 starts at v = 0)")
        self.layers[-1].scale_(scale)

    def condition(self, t: Tensor, x: Tensor, context: Tensor | None) -> Tensor:
        """The conditioning vector: ``[1, k]`` for a scalar ``t`` without context, else ``[B, k (+ c)]``.

        ``t`` is a scalar during ODE solves and per-sample ``[B]`` in flow-matching training.
        """
        c = self.time_embedding(torch.as_tensor(t, dtype=x.dtype, device=x.device))
        if self.context_features is None:
            return c
        return torch.cat([c.expand(x.shape[0], -1), context.to(x)], dim=-1)

    def forward(self, t: Tensor, x: Tensor, context: Tensor | None = None) -> Tensor:
        c = self.condition(t, x, context)
        h = x
        for layer in self.layers[:-1]:
            h = self.activation(layer(h, c))
        return self.layers[-1](h, c)

    def forward_with_jvp(
        self, t: Tensor, x: Tensor, context: Tensor | None = None, tangents: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """``v [B, D]`` and the Jacobian-vector products ``(∂v/∂x) u_k``: ``[B, K, D]``.

        ``tangents`` is ``u [B, K, D]``; ``None`` means the D basis vectors, so the result ``[b, k, i]`` is
        ``∂v_i/∂x_k`` (the transposed Jacobian). Tangents go through each layer beside the activations
        (forward mode by hand), so the divergence needs no double backward: about (1 + K) forward passes.
        """
        c = self.condition(t, x, context)
        derivative = _DERIVATIVES[self.activation_name]
        h, u = x, tangents
        for layer in self.layers[:-1]:
            pre, du = layer.with_tangents(h, u, c)
            h = self.activation(pre)
            u = derivative(pre, h).unsqueeze(1) * du
        v, jv = self.layers[-1].with_tangents(h, u, c)
        return v, jv.expand(x.shape[0], -1, -1)


class ConcatMLP(TimeMLP):
    """Time-concatenated MLP: every layer acts on ``[h, t, context]`` (Chen et al. 2018). See :class:`TimeMLP`."""

    def __init__(self, features: int, hidden: Sequence[int] = (64, 64, 64), **kwargs) -> None:
        super().__init__(features, hidden, layer="concat", **kwargs)


class ConcatSquashMLP(TimeMLP):
    """FFJORD's concat-squash MLP: ``(W h + b) ⊙ σ(G c + g) + H c`` per layer (Grathwohl et al. 2019)."""

    def __init__(self, features: int, hidden: Sequence[int] = (64, 64, 64), **kwargs) -> None:
        super().__init__(features, hidden, layer="concatsquash", **kwargs)


class FourierMLP(TimeMLP):
    """Concat MLP on Fourier time features ``[t, sin(ω_k t), cos(ω_k t)]`` (see :class:`FourierTime`)."""

    def __init__(self, features: int, hidden: Sequence[int] = (64, 64, 64), *, num_frequencies: int = 4, **kwargs) -> None:
        super().__init__(features, hidden, layer="concat", time_embedding=FourierTime(num_frequencies), **kwargs)
