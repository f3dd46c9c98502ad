"""The fits' progress bar: off unless asked (or on a terminal), and showing the held-out score they stop on."""
from __future__ import annotations

import pytest
import torch

import ctflows
from ctflows.errors import ConfigurationError
from ctflows.nonparametric import fit_dual_ascent, fit_gaussianization

FITS = {"fit_dual_ascent": (fit_dual_ascent, 40), "fit_gaussianization": (fit_gaussianization, 3)}


def moons() -> torch.Tensor:
    return ctflows.get_density("two_moons").sample(600, generator=torch.Generator().manual_seed(0)).double()


@pytest.mark.parametrize("name", FITS)
def test_the_bar_shows_each_steps_held_out_score_and_the_best(name, capsys):
    fitter, steps = FITS[name]
    flow = fitter(moons(), max_steps=steps, patience=steps, progress=True, generator=torch.Generator().manual_seed(1))
    err = capsys.readouterr().err
    best = max(flow.report.validation)
    assert name in err and f"{steps}/{steps}" in err
    assert f"held-out L {flow.report.validation[-1]:.4f}, best {best:.4f} at step {flow.report.steps}" in err
    fitter(moons(), max_steps=steps, progress=False)
    fitter(moons(), max_steps=steps)  # None: only on a terminal, which pytest's captured stderr is not
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("name", FITS)
def test_a_progress_that_is_not_a_bool_or_none_is_refused(name):
    with pytest.raises(ConfigurationError, match=f"{name}: progress must be True, False or None"):
        FITS[name][0](moons(), progress="yes")
