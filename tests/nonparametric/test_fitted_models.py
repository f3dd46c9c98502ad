"""The two fitted models end to end on two_moons (float64): exp(log_prob) integrates to 1 within 1% on a
grid, round trips hold, KL to the true density falls as steps are added, held-out L drives the stopping
rule, and bad data gets a message saying what to change."""
import copy

import pytest
import torch

import ctflows
from ctflows.errors import ConfigurationError, DataError, InputError
from ctflows.grid import integrate_2d
from ctflows.nonparametric import FitReport, fit_dual_ascent, fit_gaussianization, truncate
from ctflows.nonparametric.holdout import split

BOUNDS = (-5.0, 5.0, -5.0, 5.0)


def fit(method):
    torch.manual_seed(0)
    density = ctflows.get_density("two_moons")
    data = density.sample(1500).double()
    generator = torch.Generator().manual_seed(0)
    if method == "dual_ascent":
        return fit_dual_ascent(data, max_steps=600, neighbours=0.05, step_limit=0.2, generator=generator), density
    return fit_gaussianization(data, max_steps=30, patience=5, generator=generator), density


@pytest.fixture(scope="module", params=["dual_ascent", "gaussianization"])
def fitted(request):
    return fit(request.param)


def kl(flow, density):
    return ctflows.evaluate(flow, density, n=4000, seed=1)["kl"]


def test_density_integrates_to_one(fitted):
    flow, _ = fitted
    mass = integrate_2d(flow.log_prob, BOUNDS, n=200, dtype=torch.float64)
    assert abs(mass - 1) < 0.01, mass


def test_round_trips_and_sampling(fitted):
    flow, density = fitted
    x = density.sample(300).double()
    with torch.no_grad():
        z, logdet = flow.transform(x)
        x_back, logdet_inv = flow.transform.inverse(z)
        torch.testing.assert_close(x_back, x, atol=1e-8, rtol=0)
        torch.testing.assert_close(logdet_inv, -logdet, atol=1e-8, rtol=0)
        samples, log_q = flow.sample_and_log_prob(500, generator=torch.Generator().manual_seed(2))
        torch.testing.assert_close(log_q, flow.log_prob(samples), atol=1e-8, rtol=0)
    assert samples.abs().max() < 10  # the tails do not compound into wild samples


def test_kl_falls_with_the_number_of_steps(fitted):
    flow, density = fitted
    steps = flow.report.steps
    curve = [kl(truncate(flow, k), density) for k in (0, steps // 4, steps)]
    assert curve[0] > curve[1] > curve[2], curve
    assert curve[0] - curve[2] > 0.3  # a real improvement over the starting Gaussian(ized) fit


def test_report_records_held_out_likelihood_per_step(fitted):
    flow, _ = fitted
    report = flow.report
    assert isinstance(report, FitReport) and len(report.train) == len(report.validation) >= report.steps + 1
    assert report.best_validation == max(report.validation)
    assert len(flow.transform.layers) == report.prefix_layers + report.layers_per_step * report.steps
    if report.stopped == "patience":
        assert report.validation[report.steps] >= max(report.validation[report.steps + 1 :])
    assert report.validation[report.steps] > report.validation[0]
    # and the train and validation scores are the training and held-out points' mean log-likelihood under
    # the model cut there
    torch.manual_seed(0)
    data = ctflows.get_density("two_moons").sample(1500).double()  # as fit() drew them
    train, held_out = split(data, 0.2, torch.Generator().manual_seed(0), owner="test")  # the default fraction
    for k in sorted({0, report.steps // 2, report.steps}):
        with torch.no_grad():
            held_out_score = float(truncate(flow, k).log_prob(held_out).mean())
            train_score = float(truncate(flow, k).log_prob(train).mean())
        assert report.validation[k] == pytest.approx(held_out_score, rel=1e-10), k
        assert report.train[k] == pytest.approx(train_score, rel=1e-10), k


def test_best_validation_is_the_held_out_score_of_the_kept_steps():
    """``best_validation`` reads ``validation[steps]``, the kept model's score, even where a later step scored higher."""
    report = FitReport("dual_ascent", steps=1)
    for train, validation in [(-3.0, -2.5), (-2.0, -2.1), (-1.0, -2.0)]:
        assert report.record(train, validation) == validation
    assert report.train == [-3.0, -2.0, -1.0] and report.validation == [-2.5, -2.1, -2.0]
    assert report.best_validation == -2.1


def test_state_dict_moves_to_a_fresh_copy_and_dtype(fitted):
    flow, density = fitted
    x = density.sample(50).double()
    single = fit(flow.report.method)[0].float()  # the same fit, cast: float32 all the way through
    log_q = flow.log_prob(x).detach()
    torch.testing.assert_close(single.log_prob(x.float()).double().detach(), log_q, atol=1e-3, rtol=1e-3)
    # A copy with every parameter and buffer moved: the state dict must bring all of them back.
    twin = copy.deepcopy(flow)
    with torch.no_grad():
        for value in [*twin.parameters(), *twin.buffers()]:
            if value.is_floating_point():
                value.mul_(1.01)
    assert not torch.allclose(twin.log_prob(x).detach(), log_q)
    twin.load_state_dict(flow.state_dict())
    torch.testing.assert_close(twin.log_prob(x).detach(), log_q, rtol=0, atol=0)


def test_gaussianization_can_be_fine_tuned_by_gradient():
    torch.manual_seed(0)
    density = ctflows.get_density("two_moons")
    data = density.sample(1500).double()
    flow = fit_gaussianization(data, max_steps=4, patience=5, generator=torch.Generator().manual_seed(0))
    before = kl(flow, density)
    ctflows.fit(flow, data, steps=60, batch_size=256, lr=1e-3, seed=0, progress=False)
    assert kl(flow, density) < before


@pytest.mark.parametrize("fitter", [fit_dual_ascent, fit_gaussianization])
def test_bad_data_is_refused_with_a_clear_message(fitter):
    good = torch.randn(200, 2, dtype=torch.float64)
    with pytest.raises(DataError, match="pass at least"):
        fitter(good[:4])
    bad = good.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(InputError, match="NaN"):
        fitter(bad)
    with pytest.raises(InputError, match=r"shape \[N, D\]"):
        fitter(good[:, 0])
    with pytest.raises(InputError, match="floating"):
        fitter(good.long())
    with pytest.raises(ConfigurationError, match="validation_fraction"):
        fitter(good, validation_fraction=1.5)
    with pytest.raises(ConfigurationError, match="max_steps"):
        fitter(good, max_steps=-1)
    with pytest.raises(DataError, match="column 1 of the data is constant"):
        fitter(torch.cat([good[:, :1], torch.ones(200, 1, dtype=torch.float64)], dim=1))
    # Repeated points fall on both sides of the held-out split: the stopping rule cannot see the overfit.
    with pytest.raises(DataError, match="repeat another point exactly.*dequantization"):
        fitter(good.repeat(4, 1))
    with pytest.raises(DataError, match="repeat another point exactly"):
        fitter(torch.randint(0, 3, (200, 2), generator=torch.Generator().manual_seed(0)).double())


@pytest.mark.parametrize("fitter", [fit_dual_ascent, fit_gaussianization])
def test_points_on_a_hyperplane_are_refused_whatever_the_columns_scales(fitter):
    """Gaussianization fitted (x, 2x) with a spike worth +32 nats a point on the line: no density on R^2 is there."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 1, generator=g, dtype=torch.float64)
    noise = torch.randn(300, 1, generator=g, dtype=torch.float64)
    # The last: a combination constant to 1e-6 of the columns' spread, below the 1e-5 that counts as a hyperplane.
    for line in (torch.cat([x, 2 * x], 1), torch.cat([x, 3 * x + 1], 1).float(), torch.cat([1e4 * x, -1e-3 * x], 1),
                 torch.cat([x, x + 1e-6 * noise], 1)):
        with pytest.raises(DataError, match=r"the data lie on a hyperplane.*drop a redundant column"):
            fitter(line, max_steps=2)
    # Correlated, or in very different units, or in small units (covariance eigenvalues near 1e-12), but spread in
    # the plane: fitted.
    fitter(torch.cat([x, x + 1e-3 * noise], 1), max_steps=2)
    fitter(1e-6 * torch.cat([x, noise], 1), max_steps=2)
    if fitter is fit_gaussianization:  # whitening needs the columns within 1/√eps of each other's scale first
        fitter(torch.cat([1e4 * x, 1e-3 * noise], 1), max_steps=2)


@pytest.mark.parametrize("neighbours", [1, 1.0, 2.5, 0.0, -3, float("nan")])
def test_dual_ascent_refuses_neighbour_counts_that_give_no_smooth_map(neighbours):
    # A count of 1 is the centre alone: a radius of zero, a spike map that moves one point and overfits it.
    with pytest.raises(ConfigurationError, match="neighbours"):
        fit_dual_ascent(torch.randn(200, 2, dtype=torch.float64), max_steps=1, neighbours=neighbours)


@pytest.mark.parametrize("bandwidth", [0.0, -1.0])
def test_gaussianization_refuses_a_bandwidth_that_is_not_positive(bandwidth):
    with pytest.raises(ConfigurationError, match="bandwidth"):
        fit_gaussianization(torch.randn(200, 2, dtype=torch.float64), max_steps=1, bandwidth=bandwidth)


def test_truncate_checks_its_arguments(fitted):
    flow, _ = fitted
    with pytest.raises(ConfigurationError, match="steps"):
        truncate(flow, flow.report.steps + 1)
    for not_an_int in (True, 1.0):  # bool is an int subclass, but True steps is a mistake
        with pytest.raises(ConfigurationError, match="steps must be an int"):
            truncate(flow, not_an_int)
    with pytest.raises(ConfigurationError, match="FitReport"):
        truncate(ctflows.realnvp(features=2, blocks=1), 0)
