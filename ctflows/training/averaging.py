"""An exponential moving average (EMA) of a model's trainable parameters, to evaluate and return:

    θ̄_n = Σ_{k=1..n} β^(n−k) (1 − β) θ_k / (1 − βⁿ)      over the iterates θ_1 … θ_n after each applied step

i.e. θ̄_n = θ̄_{n−1} + w_n (θ_n − θ̄_{n−1}) with w_n = (1 − β) / (1 − βⁿ): the bias-corrected average (as in
Adam's moments, Kingma & Ba 2015), so the initial parameters carry no weight and a short run is not pulled
back towards them. Averaging the iterates cancels much of the step-to-step noise of stochastic training
(Polyak & Juditsky, 1992); models trained by regression onto noisy targets, flow matching among them, are
usually evaluated with such an average (Song et al., 2021). Each update is torch's ``get_ema_multi_avg_fn``.
"""
from __future__ import annotations

from contextlib import contextmanager, nullcontext
from typing import ContextManager, Iterable, Iterator

import torch
from torch import Tensor
from torch.optim.swa_utils import get_ema_multi_avg_fn

from ctflows.core.counts import real_setting
from ctflows.errors import CheckpointError
from ctflows.training.interrupts import interrupts_deferred


def check_decay(decay: float) -> float:
    """``decay`` as a float in (0, 1) (NumPy and 0-d torch numbers too, as every rate of ``fit``), else a
    ConfigurationError that says what the number means."""
    want = ("a number strictly between 0 and 1 (the weight kept by the average at each step; 0.99 averages over "
            "roughly the last 100 steps)")
    return real_setting("fit", "ema_decay", decay, want, lambda v: 0 < v < 1)  # a bool, NaN and inf fail it too


class ParameterAverage:
    """The running average θ̄ of ``params`` (tensors updated in place by an optimizer), β = ``decay``.

    ``update()`` after each optimizer step; ``applied()`` puts θ̄ into the parameters for a while (to
    evaluate or save), ``swap()`` exchanges θ and θ̄ for good; ``holding`` says whether θ̄ is in the
    parameters, and ``hold_own()`` puts θ back if so (``update``, ``state_dict`` and ``load_state_dict``
    expect θ in place). Before the first update θ̄ = θ.
    """

    def __init__(self, params: Iterable[Tensor], decay: float) -> None:
        self.decay = check_decay(decay)
        self.params = list(params)
        self.averaged = [p.detach().clone() for p in self.params]
        self.updates = 0
        self.holding = False  # whether the parameters hold θ̄ (and self.averaged their own values)

    def update(self) -> None:
        """Fold the parameters' current values into θ̄ with weight w_n = (1 − β) / (1 − βⁿ)."""
        self.updates += 1
        weight = (1 - self.decay) / (1 - self.decay**self.updates)  # 1 at the first update
        get_ema_multi_avg_fn(1 - min(weight, 1.0))(self.averaged, [p.detach() for p in self.params], None)

    def swap(self) -> None:
        """Exchange the parameters' values with the averages (done twice, it restores both).

        An error midway is undone (unless undoing fails too), and a Ctrl-C is held back until the exchange is
        whole, so θ and θ̄ are not left mixed; ``holding`` says which of them is in the parameters.
        """
        with interrupts_deferred():
            self._exchange()

    def _exchange(self) -> None:
        # Pair by pair, so the memory it takes beyond θ and θ̄ is one tensor's, not a copy of the whole model.
        with torch.no_grad():
            exchanged = 0
            try:
                for param, average in zip(self.params, self.averaged):
                    _exchange_values(param, average)
                    exchanged += 1
            except BaseException:
                for param, average in zip(self.params[:exchanged], self.averaged[:exchanged]):
                    _exchange_values(param, average)
                raise
            else:
                self.holding = not self.holding

    def hold_own(self) -> None:
        """Put the parameters' own values back if θ̄ is in their place (before saving a training state)."""
        if self.holding:
            self.swap()

    @contextmanager
    def applied(self) -> Iterator[None]:
        """The parameters hold θ̄ inside the block and what they held before it again after it (so blocks nest).

        Also after a Ctrl-C, except one that lands in the last few statements before the exchange back starts,
        or an error in that exchange: then θ̄ stays in place (``holding``), which is why ``fit`` calls
        :meth:`hold_own` on its way out.
        """
        was_holding = self.holding
        try:
            if not was_holding:  # already in place (an outer block): swapping would put θ in instead
                self.swap()  # a Ctrl-C held back in it is raised here, inside the try
            yield
        finally:
            if self.holding != was_holding:
                self.swap()

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "averaged": [a.clone() for a in self.averaged]}

    def load_state_dict(self, state: dict) -> None:
        """Restore saved averages; they must belong to parameters of the same shapes."""
        if not {"averaged", "updates"} <= state.keys():
            raise CheckpointError(
                f"resume: the saved parameter average has keys {sorted(state)}, not 'averaged' and 'updates' "
                "(it was written by an earlier ctflows); start a new run in another checkpoint_dir"
            )
        saved = state["averaged"]
        shapes = [tuple(a.shape) for a in self.averaged]
        if [tuple(a.shape) for a in saved] != shapes:
            raise CheckpointError(
                "resume: the saved parameter averages do not match this model's parameters "
                f"({len(saved)} saved tensors, {len(shapes)} parameters); resume with the model that wrote them"
            )
        with torch.no_grad():
            for average, value in zip(self.averaged, saved):
                average.copy_(value)
        self.updates = int(state["updates"])


def _exchange_values(a: Tensor, b: Tensor) -> None:
    """Swap the values of two tensors of one shape in place; an error leaves both as they were."""
    held = a.detach().clone()  # nothing has changed if this fails
    a.copy_(b)
    try:
        b.copy_(held)
    except BaseException:
        a.copy_(held)
        raise


def holding_average(average: ParameterAverage | None) -> ContextManager[None]:
    """``average.applied()``, or a block that changes nothing when there is no average."""
    return average.applied() if average is not None else nullcontext()
