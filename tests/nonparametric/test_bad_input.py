"""Bad input to the two fitted models: each mistake is a ctflows error that names the function and the argument,
shows what was given and says what to pass, instead of a raw torch error, a misleading one or a silent half fit."""
import numpy as np
import pytest
import torch

from ctflows.errors import ConfigurationError, DataError, InputError
from ctflows.nonparametric import fit_dual_ascent, fit_gaussianization, truncate

FITTERS = [fit_dual_ascent, fit_gaussianization]


def good() -> torch.Tensor:
    return torch.randn(200, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("fitter", FITTERS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["float16", "bfloat16"])
def test_half_precision_data_is_refused(fitter, dtype):
    # Before: Gaussianization hit "ndtri_cpu not implemented for 'Half'"; the dual ascent fitted in half
    # precision and stopped at once on log-likelihoods too coarse to improve.
    with pytest.raises(InputError, match=rf"{fitter.__name__}: data has dtype {dtype}.*float32 or float64.*data\.float\(\)"):
        fitter(good().to(dtype), max_steps=1)


@pytest.mark.parametrize("fitter", FITTERS)
@pytest.mark.parametrize("generator", [0, "0", np.random.default_rng(0)], ids=["int", "str", "numpy"])
def test_a_generator_that_is_not_a_torch_generator_is_refused(fitter, generator):
    with pytest.raises(ConfigurationError, match=rf"{fitter.__name__}: generator must be a torch.Generator or None, "
                                                 r"got \w+ .*torch\.Generator\(\)\.manual_seed\(s\)"):
        fitter(good(), max_steps=1, generator=generator)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device for a non-CPU generator")
@pytest.mark.parametrize("fitter", FITTERS)
def test_a_cuda_generator_is_refused(fitter):
    with pytest.raises(ConfigurationError, match=rf"{fitter.__name__}: generator is on cuda.*the draws are made on cpu"):
        fitter(good().cuda(), max_steps=1, generator=torch.Generator(device="cuda"))


@pytest.mark.parametrize("fitter", FITTERS)
def test_data_without_coordinates_is_refused(fitter):
    with pytest.raises(InputError, match=rf"{fitter.__name__}: data has no coordinates \(shape \[200, 0\]\)"):
        fitter(good()[:, :0], max_steps=1)


@pytest.mark.parametrize("fitter", FITTERS)
@pytest.mark.parametrize(("scale", "way"), [(1e160, "overflow"), (2e153, "overflow"), (1e-160, "underflow")])
def test_data_whose_squares_leave_float64_is_refused(fitter, scale, way):
    # Before: "a column of the data is constant" or a RadialExpansion with bandwidth=nan, neither the cause.
    # 2e153: each square fits in float64, but 400 of them summed do not (the bound is √(max / N·D), about 6.7e152);
    # with the bound at √max the fits said "the data lie on a hyperplane".
    with pytest.raises(InputError, match=rf"{fitter.__name__}: data has values of magnitude .* {way} float64.*rescale"):
        fitter(good() * scale, max_steps=1)


@pytest.mark.parametrize("fitter", FITTERS)
def test_all_zero_data_is_refused_for_its_repeats_not_as_an_underflow(fitter):
    """Zeros have no squares to underflow: the magnitude check lets them by, and the real fault is named."""
    with pytest.raises(DataError, match=rf"{fitter.__name__}: 199 of 200 points repeat another point exactly"):
        fitter(torch.zeros(200, 2, dtype=torch.float64), max_steps=1)


@pytest.mark.parametrize("fitter", FITTERS)
@pytest.mark.parametrize("steps", [np.int64(2), torch.tensor(2)], ids=["numpy", "torch"])
def test_whole_numbers_of_any_kind_are_counts_of_steps(fitter, steps):
    """max_steps and truncate's steps take NumPy and 0-d torch integers, as patience and kernels do (before, they
    were refused as "must be a non-negative int, got np.int64(2)"); a bool is still refused."""
    flow = fitter(good(), max_steps=steps, patience=5, generator=torch.Generator().manual_seed(0))
    assert len(flow.report.validation) == 3 and flow.report.stopped == "max_steps"
    cut = truncate(flow, np.int64(0) if isinstance(steps, np.integer) else torch.tensor(0))
    assert len(cut.transform.layers) == flow.report.prefix_layers and not cut.training
    with pytest.raises(ConfigurationError, match=rf"{fitter.__name__}: max_steps must be a non-negative int, got True"):
        fitter(good(), max_steps=True)


@pytest.mark.parametrize("fitter", FITTERS)
def test_settings_of_the_wrong_type_are_refused(fitter):
    name = fitter.__name__
    with pytest.raises(ConfigurationError, match=rf"{name}: validation_fraction must be a number in \(0, 1\), got '0.2'"):
        fitter(good(), max_steps=1, validation_fraction="0.2")
    with pytest.raises(ConfigurationError, match=rf"{name}: patience must be an int >= 1, got 0"):
        fitter(good(), max_steps=1, patience=0)


def test_dual_ascent_settings_of_the_wrong_type_are_refused():
    with pytest.raises(ConfigurationError, match=r"fit_dual_ascent: step_limit must be a number in \(0, 0.9\], got '0.1'"):
        fit_dual_ascent(good(), max_steps=1, step_limit="0.1")
    with pytest.raises(ConfigurationError, match=r"fit_dual_ascent: neighbours must be a fraction .* got '5%'"):
        fit_dual_ascent(good(), max_steps=1, neighbours="5%")
    with pytest.raises(ConfigurationError, match=r"neighbours=200 asks for 200 of 160 .*pass a count of at most 160"):
        fit_dual_ascent(good(), max_steps=1, neighbours=200)
    fit_dual_ascent(good(), max_steps=1, neighbours=160)  # the count the message offers is accepted


@pytest.mark.parametrize("step_limit", [0.0, 0.95, 1.0])
def test_dual_ascent_refuses_step_limits_outside_its_invertible_range(step_limit: float) -> None:
    """ε must lie in (0, 0.9]: at β = -1 a radial map folds its centre's neighbourhood onto a point."""
    with pytest.raises(ConfigurationError, match=rf"fit_dual_ascent: step_limit must be a number in \(0, 0.9\], got {step_limit}"):
        fit_dual_ascent(good(), max_steps=1, step_limit=step_limit)
    fit_dual_ascent(good(), max_steps=1, step_limit=0.9)  # the end of the range is allowed


def test_gaussianization_settings_name_the_function_called():
    with pytest.raises(ConfigurationError, match=r"fit_gaussianization: bandwidth must be a finite number > 0, got '2'"):
        fit_gaussianization(good(), max_steps=1, bandwidth="2")
    with pytest.raises(ConfigurationError, match=r"fit_gaussianization: kernels must be an int >= 1, got 0"):
        fit_gaussianization(good(), max_steps=1, kernels=0)
    with pytest.raises(ConfigurationError, match=r"fit_gaussianization: rotation must be 'pca' or 'random', got 'PCA'"):
        fit_gaussianization(good(), max_steps=1, rotation="PCA")
