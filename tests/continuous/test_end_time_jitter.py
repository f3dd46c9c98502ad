"""STEER's end-time jitter: training calls integrate to T·(1 + u), u ~ U(-b, b); evaluation integrates to T."""
from __future__ import annotations

import pytest
import torch

from ctflows.continuous import CNF
from ctflows.errors import ConfigurationError

T, B = 0.7, 0.4


def effective_end_times(cnf: CNF, a: torch.Tensor, calls: int) -> torch.Tensor:
    """T' of each call, read off the closed-form log-det T' tr(A) of the linear field."""
    x = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    return torch.stack([cnf(x)[1][0] / torch.trace(a) for _ in range(calls)])


def test_training_calls_draw_the_end_time_uniformly_around_t(linear_field, matrix_a):
    torch.manual_seed(0)
    cnf = CNF(linear_field(matrix_a), end_time=T, end_time_jitter=B, atol=1e-9, rtol=1e-9).double().train()
    times = effective_end_times(cnf, matrix_a, 400)
    assert T * (1 - B) - 1e-6 <= times.min() and times.max() <= T * (1 + B) + 1e-6
    # U(T(1-b), T(1+b)): mean T and standard deviation T·b/√3; 400 draws put the mean within 4 standard errors.
    std = T * B / 3**0.5
    assert abs(float(times.mean()) - T) < 4 * std / 400**0.5
    assert float(times.std()) == pytest.approx(std, rel=0.15)


def test_evaluation_integrates_to_t(linear_field, matrix_a):
    cnf = CNF(linear_field(matrix_a), end_time=T, end_time_jitter=B, eval_atol=1e-10, eval_rtol=1e-10).double().eval()
    torch.testing.assert_close(effective_end_times(cnf, matrix_a, 3), torch.full((3,), T, dtype=torch.float64), atol=1e-8, rtol=0)


def test_a_learned_end_time_gets_its_gradient_through_the_jitter(linear_field, matrix_a):
    torch.manual_seed(0)
    cnf = CNF(linear_field(matrix_a), end_time=T, learn_end_time=True, end_time_jitter=B).double().train()
    x = torch.randn(4, 3, dtype=torch.float64)
    logdet = cnf(x)[1]
    logdet.sum().backward()
    # logdet = T(θ)(1 + u) tr(A) per sample, so d(Σ logdet)/dθ = 4 (1 + u) tr(A) sigmoid(θ) with the u of this call.
    jitter = float(logdet[0].detach()) / (T * float(torch.trace(matrix_a)))
    assert jitter != pytest.approx(1.0, abs=1e-6)  # the call was jittered
    expected = 4 * jitter * float(torch.trace(matrix_a)) * float(torch.sigmoid(cnf.raw_end_time.detach()))
    assert float(cnf.raw_end_time.grad) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("bad", [-0.1, 1.0, 2.0])
def test_jitter_outside_zero_to_one_is_refused(linear_field, matrix_a, bad):
    with pytest.raises(ConfigurationError, match="end_time_jitter"):
        CNF(linear_field(matrix_a), end_time_jitter=bad)
