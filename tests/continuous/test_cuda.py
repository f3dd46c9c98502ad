"""The CNF on a GPU: round trip, log-dets and adjoint gradients (skipped without CUDA)."""
from __future__ import annotations

import pytest
import torch

from ctflows.continuous import CNF, ConcatSquashMLP, estimate_log_prob
from ctflows.core import Flow, StandardNormal

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_round_trip_on_gpu(dtype):
    torch.manual_seed(0)
    cnf = CNF(ConcatSquashMLP(3, (32, 32), init_scale=1.0), eval_atol=1e-8, eval_rtol=1e-8).to("cuda", dtype).eval()
    x = torch.randn(64, 3, device="cuda", dtype=dtype)
    with torch.no_grad():
        z, logdet = cnf(x)
        x_back, logdet_inv = cnf.inverse(z)
    assert z.device.type == "cuda" and logdet.dtype == dtype
    tol = 1e-4 if dtype == torch.float32 else 1e-7
    torch.testing.assert_close(x_back, x, atol=tol, rtol=0)
    torch.testing.assert_close(logdet_inv, -logdet, atol=tol, rtol=0)


@pytest.mark.parametrize("divergence", ["exact", "hutchinson"])
def test_adjoint_gradient_on_gpu_matches_cpu(divergence):
    def grads(device):
        torch.manual_seed(0)
        field = ConcatSquashMLP(3, (16, 16), activation="tanh", init_scale=1.0)
        cnf = CNF(field, divergence=divergence, atol=1e-9, rtol=1e-9, regularization="kinetic_energy").to(device, torch.float64)
        x = torch.randn(8, 3, dtype=torch.float64).to(device)
        z, logdet = cnf(x)
        loss = (0.5 * z.pow(2).sum(-1) - logdet).mean() + cnf.stats["regularization"]["kinetic_energy"]
        loss.backward()
        assert cnf.stats["nfe_backward"] > 0
        return [p.grad.cpu() for p in cnf.parameters()]

    g_gpu = grads("cuda")
    assert all(torch.isfinite(g).all() for g in g_gpu)
    if divergence == "exact":  # Hutchinson probes differ between devices' generators
        g_cpu = grads("cpu")
        for a, b in zip(g_gpu, g_cpu):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-9)


def test_likelihood_estimate_on_gpu():
    torch.manual_seed(0)
    cnf = CNF(ConcatSquashMLP(3, (16,), init_scale=1.0), eval_divergence="hutchinson")
    model = Flow(cnf, StandardNormal(3)).to("cuda").eval()
    with torch.no_grad():
        est = estimate_log_prob(model, torch.randn(10, 3, device="cuda"), num_probes=4)
    assert est.log_prob.device.type == "cuda" and not est.exact
