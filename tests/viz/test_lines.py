"""lines_panel draws one smoothed line per series, labelled, with the axis ticks side_by_side would hide."""
import numpy as np

from ctflows.viz import lines_panel, side_by_side
from ctflows.viz.figure import plt


def test_each_series_is_drawn_as_its_trailing_mean(tmp_path):
    curves = {"a": [1, 3, 5, 7], "b": [2.0, 2.0, float("nan"), 4.0], "c": [None, 5.0, 7.0, None]}
    title, draw = lines_panel("cost", curves, xlabel="step", ylabel="NFE", smooth=2)
    fig, ax = plt.subplots()
    ax.set_axis_off()
    draw(ax)
    lines = {line.get_label(): line.get_ydata() for line in ax.get_lines()}
    np.testing.assert_allclose(lines["a"], [1, 2, 4, 6])
    np.testing.assert_allclose(lines["b"], [2, 2, 2, 4])  # the NaN step is left out of its windows
    np.testing.assert_allclose(lines["c"], [np.nan, 5, 6, 7])  # None (a step not reported) likewise
    assert ax.axison and ax.get_xlabel() == "step" and ax.get_ylabel() == "NFE" and title == "cost"
    plt.close(fig)
    assert side_by_side([(title, draw)], tmp_path / "lines.png").stat().st_size > 0
