"""The toy-density interface: exact samples and exact log-densities for testing and evaluating flows.

A :class:`ToyDensity` is a plain object, not an ``nn.Module``: it has no parameters to train, and its
fixed numbers (centres, covariances, quadrature nodes) are made on the fly on the caller's device.

Subclasses implement two float64 hooks; the base class does input checks, dtype and device handling:

    _sample64(n, generator, device) -> float64 [n, dim]   (random numbers only from ``generator``)
    _log_prob64(x)                   -> float64 [n]        (x is float64 [n, dim])
"""
from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import Tensor

from ctflows.core.counts import non_negative_count, whole_setting
from ctflows.core.validation import check_generator
from ctflows.errors import ConfigurationError, InputError


class ToyDensity:
    """A density on R^dim with exact ``sample`` and exact (or quadrature-accurate) ``log_prob``.

    Attributes:
        name: registry name, e.g. ``"two_moons"``.
        dim: dimension of the samples.
        description: one line shown by ``ctflows data list``.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    dim: int = 2

    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """Draw ``n`` exact samples ``[n, dim]``.

        Random numbers come only from ``generator`` (torch's default generator when ``None``), drawn on the
        generator's device; the samples are computed in float64, then cast to ``dtype`` and moved to
        ``device`` (default: the generator's device, or the CPU), so a seed gives the same points in any dtype.
        """
        n = non_negative_count(self.name, "the number of samples", n, InputError)
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:  # "float32" was an AttributeError
            raise InputError(f"{self.name}: samples need a floating-point dtype, got {dtype!r}")
        check_generator(f"{self.name}.sample", generator)
        draw_device = generator.device if generator is not None else torch.device(device or "cpu")
        out = self._cast(self._sample64(n, generator, draw_device), dtype)
        return out.to(device=device if device is not None else draw_device)

    def _cast(self, x64: Tensor, dtype: torch.dtype) -> Tensor:
        """Float64 samples in ``dtype`` (densities with edges keep rounded points inside their support)."""
        return x64.to(dtype)

    def log_prob(self, x: Tensor) -> Tensor:
        """Log-density ``[n, dim] -> [n]``, computed in float64, returned in ``x``'s dtype on ``x``'s device.

        Points outside the support or at infinity get ``-inf``, rows with a NaN get NaN. The result is not
        differentiable (``x`` is detached).
        """
        self._check(x)
        x64 = x.detach().to(torch.float64)
        out = self._log_prob64(x64)
        # Every density here vanishes at infinity; the formulas alone would give inf - inf = NaN there.
        at_infinity = torch.isinf(x64).any(1) & ~torch.isnan(x64).any(1)
        return out.masked_fill(at_infinity, -math.inf).to(x.dtype)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim})"

    def _check(self, x: Tensor) -> None:
        want = f"[n, {self.dim}]"
        if not isinstance(x, Tensor):
            raise InputError(f"{self.name}: log_prob expects a torch.Tensor of shape {want}, got {type(x).__name__}")
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise InputError(f"{self.name}: log_prob expects shape {want}, got {list(x.shape)}")
        if not x.is_floating_point():
            raise InputError(f"{self.name}: log_prob expects a floating-point tensor, got dtype {x.dtype}")

    def _sample64(self, n: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
        raise NotImplementedError

    def _log_prob64(self, x: Tensor) -> Tensor:
        raise NotImplementedError


def check_dim(name: str, dim: int, *, minimum: int = 1, even: bool = False) -> int:
    """Return ``dim`` as an int if it is a whole number >= ``minimum`` (NumPy and 0-d torch integers too; and even
    when asked), else raise ConfigurationError."""
    want = f"an {'even ' if even else ''}int >= {minimum}"
    return whole_setting(name, "dim", dim, want, lambda v: v >= minimum and not (even and v % 2))


def randn(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> Tensor:
    """Standard normal float64 draws from ``generator`` (or the default one) on ``device``."""
    return torch.randn(shape, generator=generator, device=device, dtype=torch.float64)


def rand(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> Tensor:
    """Uniform [0, 1) float64 draws from ``generator`` (or the default one) on ``device``."""
    return torch.rand(shape, generator=generator, device=device, dtype=torch.float64)


def randint(high: int, shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> Tensor:
    """Uniform integers in [0, high) from ``generator`` (or the default one) on ``device``."""
    return torch.randint(high, shape, generator=generator, device=device)
