"""Tutorial 10 — a CNF that is cheap to solve: RNODE's kinetic-energy and Jacobian penalties.

An adaptive solver takes as many steps as the learned dynamics demand, and a CNF trained by maximum
likelihood alone is free to learn curved, uneven paths: nothing in log q(x) rewards a field that is easy
to integrate. RNODE (Finlay et al., "How to train your neural ODE", 2020) adds two integrals of the same
solve to the loss,

    K = ∫_0^T ‖v(t, x(t))‖² dt            (kinetic energy: straight paths at constant speed)
    B = ∫_0^T ‖∂v/∂x (t, x(t))‖_F² dt     (Jacobian Frobenius norm: a smooth field; from the divergence's own products)

    loss = −log q(x) + λ_K K + λ_B B,

so that the solver needs fewer function evaluations (NFE) for the same density. This script trains the
same CNF twice for the same wall-clock budget, plain and with λ_K = λ_B = 0.1, and compares the KL to the
true density, the NFE of the evaluation solve, and the paths. Both learn the end time T; the penalties of a
given map shrink as 1/T, so the regularized model's T grows (an easing of the penalty as training goes on).

On four rings, where the plain model's paths swirl and cost the most, this script at its defaults (150 s
per model, 2-core CPU with a benchmark running on the other core, 311 s in all) gave: plain KL 0.481 ± 0.007
with 86 evaluations, RNODE 0.409 ± 0.007 with 32 (0.37x), T 0.75 and 2.43; the figure shows the plain model's
training solves climbing past 100 evaluations while the regularized one's level off near 35, and its paths
running straighter. Neither model has learned the outer rings in 150 s. benchmarks/cnf.py (docs/benchmarks.md)
found the same after 300 s for three seeds (0.37x–0.43x at an equal or better KL). On the checkerboard
(``--data checkerboard``; the benchmark's runs, 300 s per model) the regularized model was also the better density: KL 0.059 against
0.098 with 50 evaluations against 74, and after 900 s (three seeds) 0.025–0.030 against 0.063–0.084 with 50–56
against 92–104; on eight Gaussians it bought fewer evaluations at a cost in KL unless trained for longer. The
numbers move with the machine's speed, which sets the steps per budget.

    python examples/10_regularized_cnf.py [--quick] [--seconds 150] [--data rings] [--weight 0.1]
"""
from __future__ import annotations

import time
from pathlib import Path

import torch

import ctflows
from ctflows.cli.arguments import non_negative_number, positive_number, tutorial_parser
from ctflows.core.stats import count_stats
from ctflows.training.history import History
from ctflows.viz import density_panel, lines_panel, side_by_side
from ctflows.viz.trajectories import flow_paths, trajectory_panel

BOUNDS = (-4.5, 4.5, -4.5, 4.5)
PENALTIES = ("kinetic_energy", "jacobian_frobenius")


def train(density, seconds: float, weight: float) -> tuple[ctflows.Flow, History]:
    """FFJORD's toy CNF (concat-squash 64-64-64, tanh, dopri5 at 1e-5, T = 0.5 learned) trained for ``seconds``.

    ``weight`` > 0 integrates both RNODE states and weights each by it; the same seed gives both runs the
    same initial field and the same batches.
    """
    torch.manual_seed(0)
    # Evaluated at the training tolerance, as benchmarks/cnf.py does (the CNF's default would be a tenth of it).
    flow = ctflows.cnf(2, activation="tanh", end_time=0.5, learn_end_time=True, adjoint=False,
                       divergence="exact", regularization=PENALTIES if weight > 0 else None,
                       eval_atol=1e-5, eval_rtol=1e-5)
    history = ctflows.fit(flow, density, steps=None, seconds=seconds, batch_size=256, lr=5e-3, warmup=0.05,
                          regularization=dict.fromkeys(PENALTIES, weight) if weight > 0 else None, seed=0,
                          progress=False)
    return flow, history


def main() -> None:
    parser = tutorial_parser(
        "Tutorial 10: RNODE-regularized CNF vs a plain one",
        quick="a few seconds per model (used by the tests)",
        data="rings",
    )
    parser.add_argument("--seconds", type=positive_number, default=150.0, help="training seconds per model (fit's clock: the steps only)")
    parser.add_argument("--weight", type=non_negative_number, default=0.1, help="λ_K = λ_B for the regularized model")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    seconds = 3.0 if args.quick else args.seconds
    grid, n_eval = (40, 1000) if args.quick else (150, 10000)
    density = ctflows.get_density(args.data)
    x = density.sample(60 if args.quick else 250, generator=torch.Generator().manual_seed(3))

    print(f"{args.data}: each CNF trains for {seconds:g} s; KL and NFE from one exact-divergence solve of "
          f"{n_eval} fresh points at atol = rtol = 1e-5")
    print(f"  {'model':<22} {'steps':>6} {'s/step':>7} {'KL (nats)':>16} {'eval NFE':>9} {'T':>6}")
    panels, curves = [density_panel("true density", density.log_prob, BOUNDS, n=grid)], {}
    path_panels = []
    for name, weight in (("plain", 0.0), (f"RNODE λ = {args.weight:g}", args.weight)):
        flow, history = train(density, seconds, weight)
        result = ctflows.evaluate(flow, density, n=n_eval, batch_size=n_eval, seed=1)
        nfe = count_stats(flow)["nfe_forward"]
        end_time = float(torch.as_tensor(flow.transform.layers[0].end_time).detach())
        print(f"  {name:<22} {history.steps:>6} {history.trained_seconds / history.steps:>7.3f} "
              f"{result['kl']:>8.4f} ± {result['kl_se']:.4f} {nfe:>9} {end_time:>6.2f}")
        curves[name] = history.counts["nfe_forward"]
        panels.append(density_panel(f"{name}\nKL {result['kl']:.3f}, eval NFE {nfe}", flow.log_prob, BOUNDS, n=grid))
        path_panels.append(trajectory_panel(f"{name}: paths to the base (T = {end_time:.2f})", flow_paths(flow, x), BOUNDS))

    cost = lines_panel("solver cost while training", curves, xlabel="training step", ylabel="NFE of the forward solve",
                       smooth=max(1, len(curves["plain"]) // 50))
    path = side_by_side([*panels, *path_panels, cost], Path(args.out) / "10_regularized_cnf.png",
                        columns=3, suptitle=f"plain vs RNODE-regularized CNF on {args.data}, {seconds:g} s each")
    print(f"figure: {path}\ntotal runtime {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
