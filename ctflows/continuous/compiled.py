"""A velocity field's Jacobian products under ``torch.compile``, for ``CNF(compile_field=True)``.

Two compiled functions per field: ``forward_with_jvp`` (value and forward-mode tangents, what every solver
evaluation needs) and ``vector_jacobian_product`` (what each evaluation of the adjoint solve needs)

    (t, x, a) -> (v, aᵀ ∂f/∂x, aᵀ ∂f/∂θ),    f = (v, tr ∂v/∂x, *rates),  a = (a_x [B, D], a_ℓ [B], a_r [B], …)

which runs the forward-mode pass and its reverse-mode product as one traced graph (``torch.func.vjp`` over
``functional_call``), so inductor fuses the two and no autograd graph is built at run time.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call, vjp

from ctflows.continuous.dynamics import forward_mode_outputs


class _ForwardModeOutputs(nn.Module):
    """``(v, div, *rates)`` of a field through its ``forward_with_jvp``, as a module call for ``functional_call``."""

    def __init__(self, field: nn.Module) -> None:
        super().__init__()
        self.field = field

    def forward(self, t, x, context, noise, estimator: str, regularization: Sequence[str], chunk_size: int | None):
        return forward_mode_outputs(self.field, estimator, regularization, t, x, context, noise, chunk_size)


def _vector_jacobian_product(module, t, x, context, noise, grad_outputs, estimator, regularization, chunk_size):
    named = {name: p for name, p in module.named_parameters() if p.requires_grad}
    names = list(named)
    settings = (estimator, regularization, chunk_size)
    with_context = context is not None and context.requires_grad  # then it is differentiated too, as a primal

    def outputs(x_, *rest):
        context_, params = (rest[0], rest[1:]) if with_context else (context, rest)
        return functional_call(module, dict(zip(names, params)), (t, x_, context_, noise, *settings))

    primals = (x, *((context,) if with_context else ()), *named.values())
    values, pull_back = vjp(outputs, *primals)
    grad_x, *grads = pull_back(tuple(grad_outputs))
    if with_context:  # the CNF's order: the parameters' gradients, then the context's
        grads = [*grads[1:], grads[0]]
    return values[0], grad_x, tuple(grads)


class CompiledField:
    """A field's compiled Jacobian products; held outside the module tree (it has no parameters of its own)."""

    def __init__(self, field: nn.Module) -> None:
        self.field = field
        self.forward_with_jvp = torch.compile(field.forward_with_jvp)
        self._outputs = _ForwardModeOutputs(field)
        self._vector_jacobian_product = torch.compile(_vector_jacobian_product)

    def vector_jacobian_product(
        self, t: Tensor, x: Tensor, context: Tensor | None, noise: Tensor | None, grad_outputs: Sequence[Tensor], *,
        estimator: str, regularization: Sequence[str], chunk_size: int | None,
    ) -> tuple[Tensor, Tensor, tuple[Tensor, ...]]:
        """``(v [B, D], aᵀ∂f/∂x [B, D], aᵀ∂f/∂θ per trainable parameter, then the context's if it requires grad)``."""
        return self._vector_jacobian_product(
            self._outputs, t, x, context, noise, tuple(grad_outputs), estimator, tuple(regularization), chunk_size
        )
