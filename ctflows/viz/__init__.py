"""Plots of densities, samples, training curves, trajectories and density animations (matplotlib, no screen needed)."""
from ctflows.viz.animation import cnf_density_frames, density_animation
from ctflows.viz.density import density_panel, sample_panel, side_by_side
from ctflows.viz.figure import save_figure
from ctflows.viz.lines import lines_panel
from ctflows.viz.loss import loss_curves
from ctflows.viz.trajectories import flow_paths, trajectory_panel

__all__ = [
    "density_panel", "sample_panel", "side_by_side", "loss_curves", "flow_paths", "trajectory_panel", "lines_panel",
    "cnf_density_frames", "density_animation", "save_figure",
]
