"""The model names the command line accepts, each with a builder and training defaults.

Sizes follow the library builders' defaults (chosen on 2-D toy densities); above 8 features the hidden
layers widen to 128 so that conditioners keep up with the dimension. The image models (``glow``,
``cnf-image``) take the sizes, learning rates and solver tolerances of ``examples/09_images.py``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import Tensor

from ctflows.core import Chain, Flow
from ctflows.core.transform import flat_layers
from ctflows.errors import ConfigurationError
from ctflows.image import multiscale_cnf, multiscale_glow
from ctflows.linear import Standardization
from ctflows.models import cnf, maf, nice, realnvp, resflow, spline


def _width(features: int) -> int:
    return 64 if features <= 8 else 128


@dataclass(frozen=True)
class ModelSpec:
    """How the CLI builds and trains one named model.

    Attributes:
        build: ``build(shape, seed) -> Flow`` for points of ``shape`` (``(D,)`` or ``(C, H, W)``).
        continuous: whether the model is a CNF (evaluation NFE is reported, and a 2-D density is animated).
        fit_options: keyword arguments for :func:`ctflows.training.fit` (objective, lr, batch size).
        summary: one line for ``--help`` and the report.
        image: whether the model is for images ``[C, H, W]`` rather than vectors ``[D]``.
    """

    build: Callable[[tuple[int, ...], int], Flow]
    continuous: bool
    summary: str
    fit_options: dict[str, Any] = field(default_factory=dict)
    image: bool = False


def _vector(build: Callable[[int, int], Flow]) -> Callable[[tuple[int, ...], int], Flow]:
    return lambda shape, seed: build(shape[0], seed)


def _hidden(features: int, depth: int) -> tuple[int, ...]:
    return (_width(features),) * depth


MODELS: dict[str, ModelSpec] = {
    "realnvp": ModelSpec(_vector(lambda d, s: realnvp(d, blocks=8, hidden=_hidden(d, 2), seed=s)), False,
                         "RealNVP, 8 affine couplings (Dinh et al. 2017)"),
    "nice": ModelSpec(_vector(lambda d, s: nice(d, blocks=8, hidden=_hidden(d, 2), seed=s)), False,
                      "NICE, 8 additive couplings (Dinh et al. 2015)"),
    "spline": ModelSpec(_vector(lambda d, s: spline(d, blocks=4, hidden=_hidden(d, 2), seed=s)), False,
                        "rational-quadratic spline couplings, 4 blocks of 8 bins (Durkan et al. 2019)"),
    # MADE needs at least D - 1 hidden units per layer.
    "maf": ModelSpec(_vector(lambda d, s: maf(d, hidden=(max(_width(d), d),) * 2)), False, "masked autoregressive flow, 5 layers (Papamakarios et al. 2017)"),
    "resflow": ModelSpec(_vector(lambda d, s: resflow(d, blocks=4, hidden=_hidden(d, 2), seed=s)), False,
                         "residual flow, 4 blocks (Chen et al. 2019)"),
    # Direct backpropagation through the solver: faster than the adjoint for models this small. The CNFs want
    # a higher peak lr than fit's 5e-3 default. On eight Gaussians (batch 256, cosine with 30% warm-up, seed 0,
    # KL over 5,000 samples): 1,000 flow-matching steps gave KL 1.14 / 0.22 / 0.11 at peak lr 2e-3 / 1e-2 /
    # 2e-2, and 300 likelihood steps gave 0.37 at 5e-3 and 0.20 at 1e-2.
    "cnf": ModelSpec(_vector(lambda d, s: cnf(d, hidden=_hidden(d, 3), adjoint=False)), True,
                     "FFJORD CNF trained by maximum likelihood (Grathwohl et al. 2019)", {"lr": 1e-2, "batch_size": 256}),
    "cnf-fm": ModelSpec(_vector(lambda d, s: cnf(d, hidden=_hidden(d, 3), adjoint=False)), True,
                        "the same CNF trained by flow matching (Lipman et al. 2023)",
                        {"lr": 2e-2, "batch_size": 256, "objective": "flow_matching"}),
    # Images: batches (128 unless --batch-size says otherwise) come from the data set (DequantizedImages). The CNF trains at tolerance 1e-4 and is
    # evaluated at 1e-5: examples/09_images.py reports 2.94 bits/dim after 150 steps this way, 3.39 with FFJORD's 1e-5.
    "glow": ModelSpec(lambda shape, s: multiscale_glow(shape, levels=2, steps=4, hidden=64), False,
                      "multiscale Glow, 2 levels of 4 steps (Kingma & Dhariwal 2018)", {"lr": 1e-3}, image=True),
    "cnf-image": ModelSpec(lambda shape, s: multiscale_cnf(shape, levels=2, blocks=1, hidden=(32, 32), atol=1e-4, rtol=1e-4,
                                                           eval_atol=1e-5, eval_rtol=1e-5), True,
                           "multiscale convolutional CNF, FFJORD-style (Grathwohl et al. 2019)", {"lr": 5e-3}, image=True),
}
DEFAULT_MODELS = "realnvp,spline,cnf,cnf-fm"
DEFAULT_IMAGE_MODELS = "glow,cnf-image"


def model_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` registered as ``name``; a ConfigurationError listing the known names otherwise."""
    if name not in MODELS:
        raise ConfigurationError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    return MODELS[name]


def parse_model_list(text: str) -> list[str]:
    """``"realnvp, cnf"`` -> ``["realnvp", "cnf"]``, every name checked, no repeats, at least one."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ConfigurationError("--models is empty; give a comma-separated list such as realnvp,spline,cnf")
    for name in names:
        model_spec(name)
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigurationError(f"--models lists {', '.join(repeated)} more than once")
    return names


# Models that do not split the features in two, so they also take one-dimensional data (the coupling builders
# point 1-D data to ctflows.cnf and ctflows.resflow).
ONE_FEATURE_MODELS = ("cnf", "cnf-fm", "maf", "resflow")


def _check_wide_enough(names: list[str], shape: tuple[int, ...], data_name: str) -> None:
    """A ConfigurationError naming the vector models among ``names`` that need 2 features when the data have 1."""
    narrow = [n for n in names if not model_spec(n).image and shape[0] < 2 and n not in ONE_FEATURE_MODELS]
    if narrow:
        raise ConfigurationError(
            f"{', '.join(narrow)} split the features in two and need at least 2, but {data_name} has {shape[0]}; "
            f"choose from {', '.join(ONE_FEATURE_MODELS)}"
        )


def check_models_suit_data(names: list[str], image: bool, data_name: str, shape: tuple[int, ...]) -> None:
    """A ConfigurationError naming the models that fit the data when one of ``names`` cannot model it.

    Checked for all names before any trains, so a comparison does not fail after its first models.
    """
    wrong = [n for n in names if model_spec(n).image != image]
    if wrong:
        kind = "an image data set" if image else "vector data"
        valid = ", ".join(n for n, spec in MODELS.items() if spec.image == image)
        raise ConfigurationError(f"{', '.join(wrong)} cannot model {data_name}, which is {kind}; choose from {valid}")
    _check_wide_enough(names, shape, data_name)


def build_model(name: str, shape: tuple[int, ...], seed: int, *, standardize: Tensor | None = None) -> Flow:
    """A fresh model ``name`` for points of ``shape`` (``(D,)`` or ``(C, H, W)``), initialised from ``seed``.

    With ``standardize`` (training points ``[N, D]``, e.g. from a file in its own units) the model starts with
    a fixed :class:`~ctflows.linear.Standardization` to their mean and standard deviation: the builders'
    sizes, learning rates and solver tolerances were chosen for data of about unit scale, and a fixed layer
    (unlike ActNorm) also serves CNFs trained by flow matching.
    """
    spec = model_spec(name)
    _check_wide_enough([name], shape, "the data")
    torch.manual_seed(seed)  # builders without a seed argument initialise from the global generator
    flow = spec.build(shape, seed)
    if standardize is None:
        return flow
    first = Standardization.from_data(standardize.to(next(flow.parameters()).dtype))
    return Flow(Chain(first, *flat_layers(flow.transform)), flow.base)
