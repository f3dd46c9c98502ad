"""CNF(compile_field=True): the compiled forward-mode field gives the eager numbers, in every mode and under copy."""
import copy
import shutil

import pytest
import torch

import ctflows
from ctflows.errors import ConfigurationError

needs_compiler = pytest.mark.skipif(
    shutil.which("g++") is None and shutil.which("c++") is None,
    reason="torch.compile on CPU needs a C++ compiler",
)


def _pair(**kwargs):
    torch.manual_seed(0)
    eager = ctflows.cnf(2, (16, 16), end_time=0.5, atol=1e-6, rtol=1e-6, **kwargs)
    compiled = ctflows.cnf(2, (16, 16), end_time=0.5, atol=1e-6, rtol=1e-6, compile_field=True, **kwargs)
    compiled.load_state_dict(eager.state_dict())
    return eager, compiled


@needs_compiler
@pytest.mark.parametrize("adjoint", [True, False])
def test_compiled_field_gives_the_eager_log_prob_and_gradients(adjoint):
    eager, compiled = _pair(adjoint=adjoint, divergence="exact")
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(1))
    grads = []
    for flow in (eager, compiled):
        flow.train()
        loss = -flow.log_prob(x).mean()
        grads.append(torch.autograd.grad(loss, list(flow.parameters())))
        flow.eval()
        with torch.no_grad():
            grads[-1] += (flow.log_prob(x),)
    for a, b in zip(*grads):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


@needs_compiler
def test_a_deep_copy_of_a_compiled_cnf_works_and_agrees():
    _, compiled = _pair(adjoint=False)
    x = torch.randn(32, 2, generator=torch.Generator().manual_seed(2))
    compiled.eval()
    with torch.no_grad():
        before = compiled.log_prob(x)
        twin = copy.deepcopy(compiled)
        torch.testing.assert_close(twin.log_prob(x), before)


def test_compile_field_needs_the_fields_forward_mode():
    with pytest.raises(ConfigurationError, match="field_jvp=False"):
        ctflows.cnf(2, (8,), compile_field=True, field_jvp=False)


@needs_compiler
def test_replacing_the_field_recompiles_for_the_new_one():
    _, compiled = _pair(adjoint=False)
    cnf = compiled.transform.layers[0]
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(3))
    compiled.eval()
    with torch.no_grad():
        compiled.log_prob(x)
        torch.manual_seed(5)
        cnf.field = ctflows.continuous.TimeMLP(2, (16, 16))
        eager = ctflows.Flow([ctflows.continuous.CNF(cnf.field, end_time=0.5, atol=1e-6, rtol=1e-6)], ctflows.StandardNormal(2))
        eager.eval()
        torch.testing.assert_close(compiled.log_prob(x), eager.log_prob(x), rtol=1e-4, atol=1e-5)


@needs_compiler
@pytest.mark.parametrize("context_grad", [True, False])
def test_the_compiled_adjoint_with_frozen_parameters_gives_the_eager_gradients(context_grad):
    """A field partly frozen (fine-tuning): the compiled vector-Jacobian product differentiates only the trainable
    parameters, in the order the adjoint expects, so each gradient lands on its own parameter; the context only
    where it requires grad (a fixed context is no primal of the product)."""
    context = torch.randn(32, 3, generator=torch.Generator().manual_seed(4)).requires_grad_(context_grad)
    x = torch.randn(32, 2, generator=torch.Generator().manual_seed(1))
    results = []
    for compile_field in (False, True):
        torch.manual_seed(0)
        flow = ctflows.cnf(2, (16, 16), context_features=3, end_time=0.5, atol=1e-6, rtol=1e-6, adjoint=True,
                           divergence="exact", compile_field=compile_field, warm_start_step=False)
        cnf = flow.transform.layers[0]
        frozen = [cnf.field.layers[0].linear.weight, cnf.field.layers[1].gate.bias]
        for p in frozen:
            p.requires_grad_(False)
        flow.train()
        loss = -flow.log_prob(x, context).mean()
        trainable = [p for p in flow.parameters() if p.requires_grad]
        results.append(torch.autograd.grad(loss, [*trainable, *([context] if context_grad else [])]))
    assert len(results[0]) == len(results[1])
    for a, b in zip(*results):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)
