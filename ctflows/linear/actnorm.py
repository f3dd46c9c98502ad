"""Activation normalization (Kingma & Dhariwal 2018, Glow).

    z = (x - μ) · exp(-s),      log|det J| = -Σ_i s_i

μ and s are learnable and set on the first training batch to that batch's mean and log standard
deviation, so the layer's output starts standardised.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ctflows.core.counts import positive_count, real_setting
from ctflows.core.transform import Transform
from ctflows.errors import InputError


def awaits_data_initialisation(model: nn.Module) -> bool:
    """Whether some ActNorm in ``model`` has not yet been initialised from data."""
    return any(isinstance(m, ActNorm) and not bool(m.initialized) for m in model.modules())


class ActNorm(Transform):
    """Per-feature affine normalization with data-dependent initialisation.

    Shapes: ``[B, features] -> [B, features]``. The first forward call in ``train()`` mode with B ≥ 2
    initialises μ, s from the batch (once; the flag is saved in checkpoints). Before that the layer is the
    identity (a single point has no spread to standardise by, so a batch of one waits for a larger one).
    """

    def __init__(self, features: int, eps: float = 1e-6) -> None:
        super().__init__()
        features = positive_count("ActNorm", "features", features)
        self.event_shape = (features,)
        # A negative or NaN eps would make the log-scale of the data-dependent start NaN.
        self.eps = real_setting("ActNorm", "eps", eps, "a number >= 0, e.g. 1e-6", lambda e: e >= 0)
        self.loc = nn.Parameter(torch.zeros(features))
        self.log_scale = nn.Parameter(torch.zeros(features))
        self.register_buffer("initialized", torch.tensor(False))
        # A Python copy of the flag once it is known True: reading the buffer on a GPU waits for the device,
        # which would happen in every training step otherwise. A state_dict load clears it (the flag may change).
        self._initialized_seen = False

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        """Set μ, s to the mean and log std of ``x [B, features]`` (B ≥ 2)."""
        if x.shape[0] < 2:
            raise InputError(f"ActNorm.initialize: need a batch of at least 2 points, got {x.shape[0]}")
        std = x.std(dim=0)
        constant = (std == 0).nonzero().flatten().tolist()
        if constant:
            # Its scale would become 1/eps = 1e6: every later point off that value would get a log-density of -1e10.
            raise InputError(
                f"ActNorm: feature {constant[0]} is constant in the batch it initialises from (standard deviation 0); "
                "drop or jitter that feature (dequantize discrete data), or initialise from a larger batch"
            )
        self.loc.copy_(x.mean(dim=0))
        self.log_scale.copy_(torch.log(std + self.eps))
        self.initialized.fill_(True)
        self._initialized_seen = True

    def _load_from_state_dict(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self._initialized_seen = False
        super()._load_from_state_dict(*args, **kwargs)

    def _forward(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        if self.training and not self._initialized_seen and x.shape[0] > 1:
            if bool(self.initialized):
                self._initialized_seen = True
            else:
                self.initialize(x)
        z = (x - self.loc) * torch.exp(-self.log_scale)
        return z, (-self.log_scale.sum()).expand(x.shape[0])

    def _inverse(self, z: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        x = z * torch.exp(self.log_scale) + self.loc
        return x, self.log_scale.sum().expand(z.shape[0])
