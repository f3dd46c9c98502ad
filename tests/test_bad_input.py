"""Bad input, everywhere: every layer in layer_cases.CASES and every model builder, fed malformed tensors.

Each case must either work correctly (finite output of the right shape) or raise a ctflows error whose
message names the layer, shows the offending shape / dtype / device, and says what to change; never a
silent NaN and never an error from deep inside torch. docs/reliability.md lists the cases and outcomes.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import ctflows
from ctflows.continuous import CNF, TimeMLP
from ctflows.core import Flow, Transform
from ctflows.core.validation import placement
from ctflows.errors import ConfigurationError, CtflowsError, InputError
from ctflows.linear import ActNorm, LULinear, RandomPermutation
from layer_cases import CASES, LayerCase
from test_layer_properties import CONTEXT, build

# Derandomized and without a database: the same examples every run, nothing written next to the tests.
FEW = settings(max_examples=60, deadline=None, derandomize=True, database=None)
SOME = settings(max_examples=15, deadline=None, derandomize=True, database=None)
EACH = settings(max_examples=4, deadline=None, derandomize=True, database=None)  # per parametrized combination

@functools.cache
def layer_for(case: LayerCase) -> Transform:
    """The case's layer in float64, built once: refused calls must not change it, so sharing is safe."""
    return build(case)[0]


@functools.cache
def flow_for(name: str, conditional: bool) -> Flow:
    """A two-dimensional float64 model from one of the builders, as small as each allows, built once."""
    c = CONTEXT if conditional else None
    builders: dict[str, Callable[[], Flow]] = {
        "realnvp": lambda: ctflows.realnvp(2, blocks=2, hidden=(8,), context_features=c, seed=0),
        "nice": lambda: ctflows.nice(2, blocks=2, hidden=(8,), context_features=c, seed=0),
        "spline": lambda: ctflows.spline(2, blocks=2, hidden=(8,), bins=4, context_features=c, seed=0),
        "resflow": lambda: ctflows.resflow(2, blocks=1, hidden=(8,), context_features=c, seed=0),
        "cnf": lambda: ctflows.cnf(2, hidden=(8,), context_features=c),
    }
    torch.manual_seed(0)
    return builders[name]().double().eval()


MODELS = ["realnvp", "nice", "spline", "resflow", "cnf"]


@dataclass
class Bad:
    """A malformed argument and the fragments its error message must contain."""

    kind: str
    value: Any
    expect: tuple[str, ...]


INPUT_KINDS = ["dims", "width", "empty", "nonfinite", "integer", "float", "meta", "python"]
CONTEXT_KINDS = ["missing", "width", "rows", "nan", "float32", "meta", "python"]


@st.composite
def bad_inputs(draw: st.DrawFn, features: int, kind: str) -> Bad:
    """A malformed ``[batch, features]`` float64 input of one kind, with what its message must say."""
    batch = draw(st.integers(1, 5))
    good = torch.randn(batch, features, dtype=torch.float64)
    want = f"[batch, {features}]"
    if kind == "dims":
        shape = draw(st.sampled_from([(features,), (batch, features, 1), (batch, 1, features), ()]))
        x = torch.zeros(shape, dtype=torch.float64)
        return Bad(kind, x, (want, str(list(shape))))
    if kind == "width":
        width = draw(st.integers(1, features + 3).filter(lambda w: w != features))
        return Bad(kind, torch.zeros(batch, width, dtype=torch.float64), (want, str([batch, width])))
    if kind == "empty":
        return Bad(kind, good[:0], ("empty batch", "at least one row"))
    if kind == "nonfinite":
        value = draw(st.sampled_from([float("nan"), float("inf"), float("-inf")]))
        row, col = draw(st.integers(0, batch - 1)), draw(st.integers(0, features - 1))
        good[row, col] = value
        return Bad(kind, good, ("1 NaN or Inf", "clean the data"))
    if kind == "integer":
        dtype = draw(st.sampled_from([torch.int32, torch.int64, torch.bool, torch.uint8, torch.complex64]))
        return Bad(kind, good.to(dtype), (str(dtype), "floating-point", "convert"))
    if kind == "float":
        dtype = draw(st.sampled_from([torch.float16, torch.bfloat16, torch.float32]))
        # The advice converts the input to the model's dtype, or the model to the input's; not the other way round.
        return Bad(kind, good.to(dtype), (str(dtype), "input.to(torch.float64)", f"the model with .to({dtype})"))
    if kind == "meta":
        return Bad(kind, good.to("meta"), ("device meta", "layer is on cpu", "move", "input.to('cpu')"))
    as_list = draw(st.booleans())
    return Bad(kind, good.tolist() if as_list else good.numpy(), ("list" if as_list else "ndarray", "torch.as_tensor"))


@st.composite
def bad_contexts(draw: st.DrawFn, batch: int, kind: str) -> Bad:
    """A context of one kind that a conditional layer taking ``CONTEXT`` features must refuse for ``batch`` rows."""
    good = torch.randn(batch, CONTEXT, dtype=torch.float64)
    if kind == "missing":
        return Bad(kind, None, ("needs a context", f"pass one of shape [batch, {CONTEXT}]"))
    if kind == "width":
        width = draw(st.sampled_from([1, CONTEXT + 1]))
        return Bad(kind, torch.zeros(batch, width, dtype=torch.float64), (f"[batch, {CONTEXT}]", str([batch, width])))
    if kind == "rows":
        rows = draw(st.integers(1, batch + 3).filter(lambda r: r != batch))
        return Bad(kind, torch.zeros(rows, CONTEXT, dtype=torch.float64), (f"batch size {rows}", f"has {batch}"))
    if kind == "nan":
        good[draw(st.integers(0, batch - 1)), 0] = float("nan")
        return Bad(kind, good, ("context contains 1 NaN",))
    if kind == "float32":
        return Bad(kind, good.float(), ("context has dtype torch.float32", "torch.float64"))
    if kind == "meta":
        return Bad(kind, good.to("meta"), ("context is on device meta",))
    return Bad(kind, good.tolist(), ("context must be a torch.Tensor", "list"))


def assert_refused(call: Callable[[], Any], owners: set[str], bad: Bad) -> None:
    """``call`` raises a ctflows error naming one of ``owners`` and containing every expected fragment."""
    with pytest.raises(CtflowsError) as info:
        call()
    message = str(info.value)
    owner = re.split(r"[(:]", message)[0]  # "Inverse(AffineCoupling): ..." is owned by the Inverse called
    assert owner in owners, f"{bad.kind}: the message names no layer of the model: {message}"
    for fragment in bad.expect:
        assert fragment in message, f"{bad.kind}: {fragment!r} missing from {message!r}"


def direction(layer: Transform, inverse: bool) -> Callable[..., Any]:
    return layer.inverse if inverse else layer.forward


# ---- single layers -------------------------------------------------------------------------------------


LAYER_PARAMS = [pytest.param(c, id=c.name, marks=c.marks) for c in CASES]
CONDITIONAL_PARAMS = [pytest.param(c, id=c.name, marks=c.marks) for c in CASES if c.conditional]


@pytest.mark.parametrize("kind", INPUT_KINDS)
@pytest.mark.parametrize("case", LAYER_PARAMS)
@EACH
@given(inverse=st.booleans(), data=st.data())
def test_every_layer_refuses_a_malformed_input(case: LayerCase, kind: str, inverse: bool, data: st.DataObject) -> None:
    layer = layer_for(case)
    context = None if not case.conditional else torch.randn(1, CONTEXT, dtype=torch.float64)
    bad = data.draw(bad_inputs(case.features, kind), label="bad")
    if context is not None and isinstance(bad.value, torch.Tensor) and bad.value.dim() >= 1:
        context = context.expand(bad.value.shape[0], -1)  # the context is right, so the input is the culprit
    if bad.kind == "float" and placement(layer)[1] is None:
        # No floating parameters (a permutation): any floating dtype is valid and must come back unchanged.
        z, logdet = direction(layer, inverse)(bad.value, context)
        assert z.dtype == bad.value.dtype and torch.isfinite(z).all() and torch.isfinite(logdet).all()
        return
    assert_refused(lambda: direction(layer, inverse)(bad.value, context), {type(layer).__name__}, bad)


@pytest.mark.parametrize("kind", CONTEXT_KINDS)
@pytest.mark.parametrize("case", CONDITIONAL_PARAMS)
@EACH
@given(inverse=st.booleans(), data=st.data())
def test_conditional_layers_refuse_a_malformed_context(
    case: LayerCase, kind: str, inverse: bool, data: st.DataObject
) -> None:
    layer = layer_for(case)
    batch = data.draw(st.integers(1, 5), label="batch")
    bad = data.draw(bad_contexts(batch, kind), label="bad")
    x = torch.randn(batch, case.features, dtype=torch.float64)
    assert_refused(lambda: direction(layer, inverse)(x, bad.value), {type(layer).__name__}, bad)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name, marks=c.marks) for c in CASES if not c.conditional])
def test_unconditional_layers_refuse_a_context(case: LayerCase) -> None:
    # Choice (docs/reliability.md): a context the layer would ignore is refused, not dropped silently.
    layer = layer_for(case)
    x = torch.randn(4, case.features, dtype=torch.float64)
    bad = Bad("context", torch.randn(4, CONTEXT, dtype=torch.float64), ("takes no context", "[4, 2]", "context=None"))
    assert_refused(lambda: layer(x, bad.value), {type(layer).__name__}, bad)


@pytest.mark.parametrize("case", LAYER_PARAMS)
@EACH
@given(batch=st.integers(1, 9), log_scale=st.floats(-3.0, 3.0), float32=st.booleans())
def test_every_layer_handles_odd_but_valid_input(case: LayerCase, batch: int, log_scale: float, float32: bool) -> None:
    """Batches of one, tiny and large magnitudes, float32 models: finite output of the right shape, or a ctflows error."""
    dtype = torch.float32 if float32 else torch.float64
    layer, _ = build(case, dtype=dtype)
    x = torch.randn(batch, case.features, dtype=dtype) * 10.0**log_scale
    context = torch.randn(batch, CONTEXT, dtype=dtype) if case.conditional else None
    try:
        z, logdet = layer(x, context)
    except CtflowsError as err:  # a solver may give up on a stiff input; it must say so in our terms
        assert type(layer).__name__ in str(err)
        return
    assert z.shape == x.shape and z.dtype == dtype and logdet.shape == (batch,)
    assert torch.isfinite(z).all() and torch.isfinite(logdet).all(), f"{case.name}: silent non-finite output"


def test_layers_without_floating_parameters_keep_the_input_dtype() -> None:
    # A permutation has only an integer index, so it works in any floating dtype instead of refusing one.
    layer = ctflows.ReversePermutation(3)
    for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        x = torch.randn(5, 3).to(dtype)
        z, logdet = layer(x)
        assert z.dtype == dtype and torch.equal(z, x.flip(1)) and torch.equal(logdet, torch.zeros(5, dtype=dtype))


def test_a_refused_call_leaves_a_training_layer_unchanged() -> None:
    # ActNorm initialises itself from its first batch: a refused batch must not count as that first batch.
    layer = ctflows.ActNorm(3).double().train()
    before = {k: v.clone() for k, v in layer.state_dict().items()}
    bad = torch.randn(4, 3, dtype=torch.float64)
    bad[1, 1] = float("nan")
    with pytest.raises(InputError):
        layer(bad)
    after = layer.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


# ---- whole models from the builders --------------------------------------------------------------------


def owners(flow: Flow) -> set[str]:
    return {type(m).__name__ for m in flow.modules()}


@pytest.mark.parametrize("kind", INPUT_KINDS)
@pytest.mark.parametrize("name", MODELS)
@EACH
@given(conditional=st.booleans(), data=st.data())
def test_every_model_refuses_a_malformed_input(name: str, kind: str, conditional: bool, data: st.DataObject) -> None:
    flow = flow_for(name, conditional)
    bad = data.draw(bad_inputs(2, kind), label="bad")
    rows = bad.value.shape[0] if isinstance(bad.value, torch.Tensor) and bad.value.dim() >= 1 else 1
    context = torch.randn(rows, CONTEXT, dtype=torch.float64) if conditional else None
    assert_refused(lambda: flow.log_prob(bad.value, context), owners(flow), bad)


@pytest.mark.parametrize("kind", CONTEXT_KINDS)
@pytest.mark.parametrize("name", MODELS)
@EACH
@given(data=st.data())
def test_conditional_models_refuse_a_malformed_context(name: str, kind: str, data: st.DataObject) -> None:
    flow = flow_for(name, True)
    batch = data.draw(st.integers(1, 5), label="batch")
    bad = data.draw(bad_contexts(batch, kind), label="bad")
    x = torch.randn(batch, 2, dtype=torch.float64)
    assert_refused(lambda: flow.log_prob(x, bad.value), owners(flow), bad)


@pytest.mark.parametrize("name", MODELS)
def test_unconditional_models_refuse_a_context(name: str) -> None:
    flow = flow_for(name, False)
    x = torch.randn(3, 2, dtype=torch.float64)
    bad = Bad("context", torch.randn(3, CONTEXT, dtype=torch.float64), ("takes no context", "context=None"))
    assert_refused(lambda: flow.log_prob(x, bad.value), owners(flow), bad)
    assert_refused(lambda: flow.sample(3, bad.value), {"Flow.sample"}, bad)


@FEW
@given(
    name=st.sampled_from(MODELS),
    n=st.one_of(
        st.integers(-5, 0),
        st.floats(0.5, 9.5).filter(lambda f: not f.is_integer()),
        st.sampled_from([True, "4", None, 3.0, torch.tensor(True), torch.tensor([3])]),
    ),
)
def test_sample_refuses_a_bad_count(name: str, n: Any) -> None:
    flow = flow_for(name, False)
    bad = Bad("n", n, ("must be an int >= 1", repr(n)))
    assert_refused(lambda: flow.sample(n), {"Flow.sample"}, bad)


@FEW
@given(name=st.sampled_from(MODELS), n=st.integers(1, 4), data=st.data())
def test_sample_refuses_a_bad_context(name: str, n: int, data: st.DataObject) -> None:
    flow = flow_for(name, True)
    kind = data.draw(st.sampled_from(["missing", "width", "rows", "nan", "float32", "python", "3-d"]), label="kind")
    good = torch.randn(n, CONTEXT, dtype=torch.float64)
    bad = {
        "missing": Bad(kind, None, ("conditional", f"[n, {CONTEXT}]")),
        "width": Bad(kind, torch.zeros(n, CONTEXT + 1, dtype=torch.float64), (f"[batch, {CONTEXT}]",)),
        "rows": Bad(kind, torch.zeros(n + 1, CONTEXT, dtype=torch.float64), (f"{n + 1} rows", f"n={n}")),
        "nan": Bad(kind, torch.full_like(good, float("nan")), ("NaN",)),
        "float32": Bad(kind, good.float(), ("torch.float32", "torch.float64")),
        "python": Bad(kind, good.tolist(), ("torch.Tensor", "list")),
        "3-d": Bad(kind, good.unsqueeze(0), (f"[batch, {CONTEXT}]", str([1, n, CONTEXT]))),
    }[kind]
    assert_refused(lambda: flow.sample(n, bad.value), {"Flow.sample"}, bad)


@SOME
@given(name=st.sampled_from(MODELS), n=st.integers(1, 6), shared=st.sampled_from(["[c]", "[1, c]", "[n, c]"]))
def test_sample_accepts_every_documented_context_shape(name: str, n: int, shared: str) -> None:
    flow = flow_for(name, True)
    context = {"[c]": torch.randn(CONTEXT), "[1, c]": torch.randn(1, CONTEXT), "[n, c]": torch.randn(n, CONTEXT)}[shared]
    x, log_p = flow.sample_and_log_prob(np.int64(n), context.double())  # numpy integers count as integers
    assert x.shape == (n, 2) and log_p.shape == (n,)
    assert torch.isfinite(x).all() and torch.isfinite(log_p).all()


# ---- a real second device ------------------------------------------------------------------------------


@pytest.mark.cuda
@pytest.mark.parametrize("case", LAYER_PARAMS)
def test_cuda_input_to_a_cpu_layer_and_back(case: LayerCase) -> None:
    layer = layer_for(case)
    context = torch.randn(3, CONTEXT, dtype=torch.float64) if case.conditional else None
    x = torch.randn(3, case.features, dtype=torch.float64)
    with pytest.raises(InputError, match=rf"{type(layer).__name__}: input is on device cuda:0 but the layer is on cpu"):
        layer(x.cuda(), context)
    if context is not None:
        with pytest.raises(InputError, match="context is on device cuda:0"):
            layer(x, context.cuda())
    on_gpu = build(case, device="cuda")[0]
    with pytest.raises(InputError, match="input is on device cpu but the layer is on cuda:0"):
        on_gpu(x, None if context is None else context.cuda())


def test_settings_of_the_wrong_type_are_configuration_errors_not_raw_type_errors() -> None:
    # Each used to reach Python or torch as given: "Value after * must be an iterable", "'int' object is not
    # iterable", "'<' not supported between 'str' and 'int'", "randperm(): argument 'n' must be int".
    calls = {
        "hidden must be a sequence": [lambda: ctflows.realnvp(2, hidden=8), lambda: ctflows.cnf(2, hidden=8),
                                      lambda: ctflows.resflow(2, hidden=8), lambda: ctflows.models.maf(2, hidden=8)],
        "each hidden width must be an int >= 1": [lambda: TimeMLP(2, (0,)), lambda: ctflows.realnvp(2, hidden=(16, -1))],
        "features must be an int >= 1": [lambda: ctflows.realnvp(2.0), lambda: LULinear(2.5), lambda: ActNorm(0),
                                         lambda: RandomPermutation(0)],
        "must be finite and positive": [lambda: CNF(TimeMLP(2), atol="1e-5")],
    }
    for message, makers in calls.items():
        for make in makers:
            with pytest.raises(ConfigurationError, match=message):
                make()
