"""Held-out evaluation of a flow: mean negative log-likelihood and, for a toy density, KL(p‖q).

    NLL = −E_p[log q(x)],        KL(p‖q) = E_p[log p(x) − log q(x)]

Both are Monte Carlo means over N points with standard error sd/√N (sample sd, ddof 1). The error
is honest when the points are independent draws from p (a toy density, or a test set treated as such).
Layers whose log-det is a stochastic unbiased estimate (Hutchinson) keep the NLL unbiased; their extra
variance is per point and so already inside the sd. Such layers set ``stats["logdet_exact"] = False``
and the result then says ``exact: False``; with ``probes=K > 1`` each point is evaluated K times with
fresh noise and ``nll_probe_se`` is the standard error of the NLL that comes from the probes alone.

For integer images (``levels=L``) the pixels are dequantized once, x = (k + u) / L, and the NLL of x on
the unit cube is also reported in bits per dimension of the discrete images (Theis et al. 2016):

    bpd = (NLL + D ln L) / (D ln 2)
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
from torch import Tensor, nn

from ctflows.continuous.likelihood import estimate_log_prob
from ctflows.core.counts import positive_count
from ctflows.core.modes import evaluation_mode
from ctflows.core.validation import check_generator, check_tensor
from ctflows.errors import ConfigurationError, DataError
from ctflows.image.bits import nats_to_bits_per_dim
from ctflows.image.dequantization import dequantize
from ctflows.models.seeding import initialised_from
from ctflows.training.arguments import check_model_and_seed
from ctflows.training.data_source import exact_log_prob, make_generator, one_pass, placement


def evaluate(
    flow: nn.Module,
    data: Any,
    *,
    n: int = 20000,
    batch_size: int = 4096,
    context: Tensor | None = None,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    probes: int = 1,
    levels: int | None = None,
) -> dict[str, Any]:
    """Evaluate ``flow.log_prob`` on ``data`` in ``eval()`` mode under ``torch.no_grad()``.

    Args:
        flow: a :class:`~ctflows.core.Flow` (anything with ``log_prob(x, context)`` and ``stats``).
        data: a toy density (``n`` fresh samples are drawn), a Tensor ``[N, *event]`` or ``(x, context)``
            pair, or a DataLoader (one pass); see :mod:`ctflows.training.data_source`.
        n: number of samples drawn from a density (ignored for tensors and loaders).
        batch_size: points per ``log_prob`` call.
        context: ``[N, c]`` for a Tensor ``data``, or ``[c]`` shared by every point.
        seed, generator: where a density's samples come from (a CPU generator); ``generator`` wins. Either
            also fixes the Hutchinson probes, so one seed gives one result; the probes are drawn from torch's
            global RNG reseeded for the call and restored after it. With neither, probes use the global RNG.
        probes: evaluations per point when a layer estimates its log-det (e.g. a CNF evaluated with
            Hutchinson's estimator); their mean is used and their spread reported as ``nll_probe_se``
            (0 when every log-det is exact, NaN from a single estimated probe).
        levels: ``data`` is a Tensor of integer images ``[N, C, H, W]`` with values ``0 … levels-1``; they
            are dequantized (noise from ``seed``/``generator``) and ``bpd``, ``bpd_se`` are added.

    Returns:
        ``{"nll", "nll_se", "n", "exact", "num_nonfinite", "probes", "nll_probe_se"}`` and, when ``data`` has an exact ``log_prob``,
        ``"kl", "kl_se", "entropy", "entropy_se"`` (nats); with ``levels``, ``"bpd", "bpd_se"`` (bits/dim). ``exact`` is False if any layer estimated its
        log-det on any batch. Non-finite log-densities are kept (the means become inf/nan) and counted.

    Layers that need autograd internally (a CNF's exact divergence) enable it themselves, so the outer
    ``no_grad`` is safe. The modules' previous train/eval modes are restored afterwards.
    """
    check_model_and_seed("evaluate", flow, trained=False, seed=seed)
    n = positive_count("evaluate", "n", n)
    batch_size = positive_count("evaluate", "batch_size", batch_size)
    probes = positive_count("evaluate", "probes", probes)
    # The draws (density samples, dequantization noise) are made on the CPU whatever the model's device.
    check_generator("evaluate", generator, torch.device("cpu"))
    device, dtype = placement(flow)
    seeded = seed is not None or generator is not None
    generator = generator if generator is not None else make_generator(seed)
    probe_rng = _global_rng_seeded_from(generator, device) if seeded else nullcontext()
    if levels is not None:  # before any pairing with a context: the images themselves are dequantized
        if not isinstance(data, Tensor):
            raise ConfigurationError(f"evaluate: levels= needs a Tensor of integer images, got {type(data).__name__}")
        data = dequantize(data, levels, generator=generator, dtype=dtype)
        dims = data[0].numel()
    shared = None
    if context is not None:
        check_tensor("evaluate", context, None, name="context")
        if isinstance(data, (tuple, list)):
            raise ConfigurationError("evaluate: the data are an (x, context) pair and context= is given too; give the context once")
        if context.dim() == 1 or (context.dim() == 2 and context.shape[0] == 1):  # [c] or [1, c]: one for all
            shared = context.to(device=device, dtype=dtype).reshape(1, -1)
        elif context.dim() == 2 and isinstance(data, Tensor):
            data = (data, context)
        else:
            raise ConfigurationError(
                f"evaluate: a context of shape {list(context.shape)} needs Tensor data with one row per point; "
                "for a density or a loader give one shared context [c]"
            )
    log_p_fn = exact_log_prob(data)
    log_q, log_p, exact = [], [], True
    with evaluation_mode(flow), torch.no_grad(), probe_rng:
        for x, ctx in one_pass(data, n=n, batch_size=batch_size, generator=generator, device=device, dtype=dtype):
            if shared is not None:
                if ctx is not None:
                    raise ConfigurationError("evaluate: the loader yields a context and context= is given too; give the context once")
                ctx = shared.expand(x.shape[0], -1)
            estimate = estimate_log_prob(flow, x, ctx, num_probes=probes)
            log_q.append(estimate.per_probe.double().cpu())  # [K, B], K = 1 when exact
            exact = exact and estimate.exact
            if log_p_fn is not None:
                log_p.append(log_p_fn(x).double().cpu())
    if not log_q:
        raise DataError("evaluate: the data yielded no points")
    k = min(block.shape[0] for block in log_q)  # exact batches need one evaluation, estimated ones K
    per_probe = torch.cat([block[:k] for block in log_q], dim=1)  # [k, N]
    q = per_probe.mean(dim=0)
    result: dict[str, Any] = {"n": q.numel(), "exact": exact, "num_nonfinite": int((~torch.isfinite(q)).sum())}
    result["nll"], result["nll_se"] = _mean_and_se(-q)
    result["probes"] = k
    # From one estimated probe the probes' error is unknown (NaN, as _mean_and_se gives), not zero.
    result["nll_probe_se"] = 0.0 if exact else _mean_and_se(-per_probe.mean(dim=1))[1]
    if log_p:
        p = torch.cat(log_p)
        result["kl"], result["kl_se"] = _mean_and_se(p - q)
        result["entropy"], result["entropy_se"] = _mean_and_se(-p)
    if levels is not None:
        result["bpd"] = nats_to_bits_per_dim(result["nll"], dims, levels)
        result["bpd_se"] = result["nll_se"] / (dims * math.log(2))
    return result


@contextmanager
def _global_rng_seeded_from(source: torch.Generator, device: torch.device) -> Iterator[None]:
    """Reseeds torch's global RNG from ``source``'s current state for the block, then restores it.

    The seed is drawn from a copy of ``source``, so the data's draws are the same as without it; the
    global stream it starts is a fresh one, not ``source``'s own, so probes and points are not paired.
    """
    copy = torch.Generator()
    copy.set_state(source.get_state())
    probe_seed = int(torch.randint(0, 2**62, (1,), generator=copy))
    with initialised_from(probe_seed, device):
        yield


def _mean_and_se(values: Tensor) -> tuple[float, float]:
    n = values.numel()
    se = float(values.std() / math.sqrt(n)) if n > 1 else math.nan
    return float(values.mean()), se
