"""normal_quantile against an independent 40-digit solution of log Φ(-t) = ℓ (mpmath), where the Newton solve
switches to the Mills ratio's asymptotic series (t just past 50) and far beyond."""
import pytest
import torch

from ctflows.nonparametric import normal_quantile

mpmath = pytest.importorskip("mpmath")


def exact_upper_quantile(ell: float) -> float:
    """t with log Φ(-t) = ℓ, solved in 40-digit arithmetic from t = √(-2ℓ)."""
    with mpmath.workdps(40):
        return float(mpmath.findroot(lambda t: mpmath.log(mpmath.ncdf(-t)) - ell, mpmath.sqrt(-2 * mpmath.mpf(ell))))


def test_normal_quantile_is_correct_to_two_ulps_where_the_mills_ratio_series_takes_over():
    """ℓ in [-1400, -1256] puts t in (50, 53], the series' first stretch, where its last kept term (105/t⁸)
    still counts; and decades beyond. Each t is within 2 ulps of the exact quantile (measured: ≤ 1.3)."""
    ell = torch.cat([torch.linspace(-1400, -1256, 25, dtype=torch.float64), -torch.logspace(3.2, 6, 8, dtype=torch.float64)])
    t = normal_quantile(torch.log1p(-torch.exp(ell)), ell)
    exact = torch.tensor([exact_upper_quantile(float(e)) for e in ell], dtype=torch.float64)
    assert 50 < float(exact[24]) < float(exact[0]) < 53  # the band is the series' first stretch
    torch.testing.assert_close(t, exact, atol=0, rtol=2 * torch.finfo(torch.float64).eps)
