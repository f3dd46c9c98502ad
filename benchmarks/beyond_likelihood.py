"""Beyond maximum likelihood: wall-clock training time to reach a given KL(p‖q) (issue 5, benchmark part).

    python benchmarks/beyond_likelihood.py [--densities eight_gaussians checkerboard two_moons gaussian_mixture:16]
                                           [--seconds 120] [--main-seconds 300] [--methods ...] [--quick]
                                           [--fm-fraction 0.2] [--fm-batch 4096] [--seed 0]
                                           [--target-from earlier.json ...] [--deep-hidden 64 64 64 64 64 64]
                                           [--ml-lr 5e-3] [--fast-lr 5e-2] [--fast-schedule cosine]
                                           [--fast-times uniform]
    python benchmarks/beyond_likelihood.py --summary run_seed0.json run_seed1.json ...   # one row per method

For each density the CNF trained by maximum likelihood with the exact divergence runs for its budget B
(``--main-seconds`` for the first density, ``--seconds`` for the rest); the KL it has at the end is the
*target*. Every other method then trains until its KL ≤ target or until B, and the table gives the first
training time at which it got there and the ratio (ML-exact time) / (method time). The KL is measured every
``--every`` seconds of training (``fit``'s own clock, ``History.trained_seconds``: its steps only, so neither
its set-up nor the evaluations count), always on the same ``--eval-n`` points of the density (seed 1),
so the curves of all methods are compared on identical samples.

Methods (one at a time, one thread):
  ml_exact, ml_hutchinson   one CNF (FFJORD's toy model: concat-squash 64-64-64, tanh, dopri5, atol = rtol
                            = 1e-5, T = 0.5 learned; ``benchmarks/cnf_common.build_flow``) by maximum
                            likelihood, direct backpropagation, with the exact or Hutchinson divergence
                            (Grathwohl et al. 2019)
  fm_independent, fm_ot     the same CNF by flow matching, independent or minibatch-OT coupling
                            (Lipman et al. 2023; Tong et al. 2024); no ODE solve while training. They get
                            ``--fm-fraction`` · B (default B/5), their schedule laid over that budget,
                            so "reached" means "reached ML's KL at least 1/fraction times sooner"; a flow-
                            matching step is ~50x cheaper than an ML step, so fm_independent uses batch
                            ``--fm-batch`` (4096; fm_ot keeps 256: its exact assignment is O(batch³))
  fm_constant               fm_independent with a constant learning rate after the warm-up
  fm_ema                    fm_independent with a constant learning rate (after the warm-up) and KL
                            measured on the exponential moving average of the parameters, β = 0.99
                            (``ctflows.training.averaging.ParameterAverage``, what ``fit(ema_decay=0.99)``
                            keeps; here the callback updates it after every step, and that time is added to the clock)
  ml_deep, fm_deep          ml_exact and fm_ema with a deeper field, ``--deep-hidden`` (default six layers of
                            64), to compare depth for both objectives; not run unless named in ``--methods``
  fm_fast                   fm_ema with learning rate ``--fast-lr`` (5e-2) on schedule ``--fast-schedule``
                            (cosine) and path times drawn as ``--fast-times`` says (uniform: independent, as
                            in every other fm_* method, or stratified, ``FlowMatching(times=...)``); only
                            when named
  spline                    rational-quadratic spline couplings (Durkan et al. 2019), 5 blocks, 64-64, 8 bins
  tabak, gaussianization    Tabak–Turner dual ascent (2013) and rotation-based Gaussianization (Laparra et
                            al. 2011) on 5,000 samples, float64; their time is the whole fit (they do not
                            train against a clock), reported with their final KL

All gradient-trained methods: batch 256 (spline: fit's default 512; fm_independent, fm_constant, fm_ema, fm_deep,
fm_fast: ``--fm-batch``, 4096), AdamW, lr 5e-3 (ml_*: ``--ml-lr``; fm_fast: ``--fast-lr``),
5% warm-up then cosine decay over the method's budget (fm_constant, fm_ema, fm_deep: constant; spline: fit's defaults), seed
``--seed`` (0). Evaluation of a CNF integrates with the exact divergence. ``--target-from`` takes each density's
ml_exact record (so its target) from earlier ``--json`` files instead of training it again, to run more
seeds or methods against the same target; given several (say, ML at two learning rates), the lowest final KL
is the target (files written before ``History.trained_seconds`` existed timed ML with ``fit``'s set-up on the
clock, a fraction of a second more).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import ctflows  # noqa: E402
from ctflows.cli.arguments import OneLineParser, positive_fraction, positive_int, positive_number, seed_value  # noqa: E402
from cnf_common import FFJORD_TOY_MODEL, build_flow, machine_line  # noqa: E402
from ctflows.continuous.matching import TIME_SAMPLINGS, FlowMatching  # noqa: E402
from ctflows.training.averaging import ParameterAverage, holding_average  # noqa: E402
from ctflows.nonparametric import fit_dual_ascent, fit_gaussianization  # noqa: E402

GRADIENT_METHODS = (
    "ml_exact", "ml_hutchinson", "fm_independent", "fm_ot", "fm_constant", "fm_ema", "ml_deep", "fm_deep", "fm_fast",
    "spline",
)
DEEP_HIDDEN = (64,) * 6
AVERAGED_METHODS = ("fm_ema", "fm_deep", "fm_fast")  # measured on the parameter average
CONSTANT_RATE_METHODS = ("fm_constant", "fm_ema", "fm_deep")  # fm_fast's schedule is --fast-schedule
OPT_IN_METHODS = ("ml_deep", "fm_deep", "fm_fast")  # left out of the default --methods, which the docs' earlier commands use
EMA_DECAY = 0.99
NONPARAMETRIC_METHODS = ("tabak", "gaussianization")


class KLCurve:
    """``fit`` callback: KL(p‖q) every ``every`` seconds of training, on ``fit``'s own clock.

    Marks at every/4, every/2, then every multiple of ``every`` (finer early, where fast methods arrive).
    Records ``points = [(training seconds, KL, KL s.e.)]`` on fixed evaluation samples; asks ``fit`` to
    stop once KL ≤ ``stop_below`` (if given). Training seconds are ``History.trained_seconds`` (the steps'
    time, what ``fit``'s budget counts, so these evaluations and ``fit``'s set-up are off the clock) plus the
    time the callback spends updating a parameter ``average``, which is training work done outside the step;
    with a ``budget`` it asks ``fit`` to stop once that clock has spent it (``fit``'s own, without the
    averaging, would run a little longer).
    """

    def __init__(self, density, every: float, eval_n: int, stop_below: float | None, budget: float | None = None) -> None:
        self.density, self.every, self.eval_n, self.stop_below, self.budget = density, every, eval_n, stop_below, budget
        self.points: list[tuple[float, float, float]] = []
        self.steps, self.next_mark, self.averaging_seconds = 0, every / 4, 0.0

    def trained(self, history) -> float:
        """Training seconds up to the last step in ``history`` (fit's clock), plus the callback's averaging."""
        return history.trained_seconds + self.averaging_seconds

    def measure(self, flow, trained: float, average: ParameterAverage | None = None) -> float:
        """KL of ``flow`` after ``trained`` seconds of training, holding the parameter ``average`` if one is given."""
        with holding_average(average):
            result = ctflows.evaluate(flow, self.density, n=self.eval_n, seed=1)
        self.points.append((trained, float(result["kl"]), float(result["kl_se"])))
        return float(result["kl"])

    def callback(self, flow, average: ParameterAverage | None = None):
        def on_step(step: int, history) -> bool:
            self.steps = step
            if average is not None and not (history.skipped and history.skipped[-1] == step):
                tick = time.perf_counter()
                average.update()  # as fit's own average: applied steps only
                self.averaging_seconds += time.perf_counter() - tick
            # fit's budget counts its steps alone; this clock also counts the averaging, so it stops training here
            spent = self.budget is not None and self.trained(history) >= self.budget
            if self.trained(history) < self.next_mark:
                return spent
            self.next_mark = self.next_mark * 2 if self.next_mark < self.every else self.next_mark + self.every
            kl = self.measure(flow, self.trained(history), average)
            return spent or (self.stop_below is not None and kl <= self.stop_below)
        return on_step


def make_density(spec: str):
    """``name`` or ``name:dim`` (e.g. ``gaussian_mixture:16``) -> a toy density with exact ``log_prob``."""
    name, _, dim = spec.partition(":")
    return ctflows.get_density(name, **({"dim": int(dim)} if dim else {}))


@dataclass(frozen=True)
class Settings:
    """The command line's knobs that shape the gradient-trained methods (see the module docstring)."""

    fm_batch: int = 4096
    seed: int = 0
    deep_hidden: tuple[int, ...] = DEEP_HIDDEN
    ml_lr: float = 5e-3
    fast_lr: float = 5e-2
    fast_schedule: str = "cosine"
    fast_times: str = "uniform"


def training_options(method: str, settings: Settings) -> dict:
    """``fit`` options of a CNF method: batch, learning rate and schedule, and the flow-matching objective."""
    options = dict(batch_size=256, lr=settings.ml_lr if method.startswith("ml_") else 5e-3, warmup=0.05,
                   schedule="cosine")
    if method.startswith("fm_"):
        times = settings.fast_times if method == "fm_fast" else "uniform"
        options["objective"] = FlowMatching(coupling="ot" if method == "fm_ot" else "independent", times=times)
        if method != "fm_ot":  # OT's exact assignment is O(batch³): it keeps 256
            options["batch_size"] = settings.fm_batch
    if method in CONSTANT_RATE_METHODS:
        options["schedule"] = "constant"
    if method == "fm_fast":
        options.update(lr=settings.fast_lr, schedule=settings.fast_schedule)
    return options


def train_gradient(method: str, density, dim: int, seconds: float, curve: KLCurve, settings: Settings = Settings()) -> dict:
    """Train one gradient-based method for ``seconds`` with the curve's callback; returns its record."""
    torch.manual_seed(settings.seed)
    if method == "spline":
        flow, options = ctflows.spline(dim, blocks=5, hidden=(64, 64), bins=8), {}
    else:
        divergence = "hutchinson" if method == "ml_hutchinson" else "exact"
        model = FFJORD_TOY_MODEL
        if method.endswith("_deep"):
            model = argparse.Namespace(**{**vars(FFJORD_TOY_MODEL), "hidden": list(settings.deep_hidden)})
        flow = build_flow(dim, model, adjoint=False, divergence=divergence)
        options = training_options(method, settings)
    # Flow matching has no data-initialisation pass, so the average can start before fit; it is bias-corrected,
    # so these initial values get no weight anyway. Trainable parameters only, as in fit.
    trainable = [p for p in flow.parameters() if p.requires_grad]
    average = ParameterAverage(trainable, EMA_DECAY) if method in AVERAGED_METHODS else None
    history = ctflows.fit(flow, density, steps=None, seconds=seconds, seed=settings.seed, progress=False,
                          callback=curve.callback(flow, average), **options)
    stopped_early = bool(curve.points) and curve.stop_below is not None and curve.points[-1][1] <= curve.stop_below
    if not stopped_early:  # the final state, unless the last mark already was the stopping one
        curve.measure(flow, curve.trained(history), average)
    objective = options.get("objective")
    hidden = list(settings.deep_hidden) if method.endswith("_deep") else None
    return {"steps": curve.steps, "curve": curve.points, "lr": options.get("lr"), "seed": settings.seed,
            "schedule": options.get("schedule", "fit's default"), "batch_size": options.get("batch_size", "fit's default"),
            **({"hidden": hidden} if hidden else {}), **({"times": objective.times} if objective is not None else {})}


def fit_nonparametric(method: str, density, eval_n: int) -> dict:
    """Fit Tabak's dual ascent or Gaussianization to 5,000 float64 samples; time and final KL."""
    generator = torch.Generator().manual_seed(0)
    data = density.sample(5000, generator=generator).double()
    tick = time.perf_counter()
    if method == "tabak":
        flow = fit_dual_ascent(data, max_steps=4000, step_limit=0.1, generator=generator)
    else:
        flow = fit_gaussianization(data, generator=generator)
    seconds = time.perf_counter() - tick
    result = ctflows.evaluate(flow, density, n=eval_n, seed=1)
    return {"steps": flow.report.steps, "curve": [(seconds, float(result["kl"]), float(result["kl_se"]))]}


def earlier_target(earlier: dict, spec: str, seconds: float, path: str, eval_n: int) -> dict:
    """The ml_exact record of ``spec`` in an earlier run's JSON, with ``lr`` and ``target_from`` (the path) set.

    It must have had the same budget, and the same number of evaluation samples where the file says.
    """
    if spec not in earlier or "ml_exact" not in earlier[spec]["records"]:
        raise SystemExit(f"--target-from {path}: no ml_exact record for {spec!r} there")
    if earlier[spec]["seconds"] != seconds:
        raise SystemExit(f"--target-from {path}: {spec!r} had budget {earlier[spec]['seconds']} s there, {seconds} s here")
    if earlier[spec].get("eval_n", eval_n) != eval_n:
        raise SystemExit(f"--target-from {path}: {spec!r} was evaluated on {earlier[spec]['eval_n']} samples there, "
                         f"{eval_n} here; pass the same --eval-n")
    record = earlier[spec]["records"]["ml_exact"]
    # Records written before they kept their rate: the run's --ml-lr (a few files of the fourteenth session held it
    # beside the records), or 5e-3 in files older than that option.
    return {**record, "lr": record.get("lr", earlier[spec].get("ml_lr", 5e-3)), "target_from": path}


def hardest_target(earlier: list[tuple[str, dict]], spec: str, seconds: float, eval_n: int) -> dict:
    """Of the ml_exact records of ``spec`` in the earlier runs ``[(path, json)]``, the one with the lowest final KL.

    The lowest of several noisy KLs is biased low: a harder target, never an easier one.
    """
    records = [earlier_target(saved, spec, seconds, path, eval_n) for path, saved in earlier]
    return min(records, key=lambda record: record["curve"][-1][1])


def first_reach(curve: list, target: float) -> float | None:
    """First training time on ``curve`` whose KL ≤ ``target`` (None: never)."""
    return next((t for t, kl, _ in curve if kl <= target), None)


def budget(method: str, seconds: float, fm_fraction: float) -> float:
    """Training budget of ``method``: B, or ``fm_fraction`` · B for flow matching (the claim under test)."""
    return seconds * fm_fraction if method.startswith("fm_") else seconds


def table(spec: str, seconds: float, records: dict[str, dict], fm_fraction: float = 1.0) -> str:
    """Markdown rows for one density: final KL, time to the ML-exact target and the speed-up over ML.

    Times are the first evaluation mark at which KL ≤ target, so they are upper bounds at the marks'
    resolution; the last column is the training time ML-exact needed to reach the method's last KL.
    """
    target = records["ml_exact"]["curve"][-1][1]
    ml_ran = records["ml_exact"]["curve"][-1][0]
    lr = records["ml_exact"].get("lr")  # absent in files written before records kept their rate
    lines = [
        f"`{spec}`: budget B = {seconds:.0f} s of training per method; target KL = {target:.4f} "
        f"(ML, exact divergence{f', lr {lr:g}' if lr else ''}, after B)",
        "",
        "| method | steps | last KL (nats) | at (s) | time to target (s) | ML-exact time / time "
        "| ML-exact time to this last KL (s) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for method, record in records.items():
        t, kl, se = record["curve"][-1]
        result = speed_up(records, method)
        reach = result["reached"]
        own = budget(method, seconds, fm_fraction)
        missed = f"not reached in {own:.0f}" if method in GRADIENT_METHODS else f"not reached (fit {t:.1f} s)"
        when = f"{reach:.1f}" if reach is not None else missed
        ratio = f"{result['ratio']:.1f}" if reach is not None else "—"
        ml_to_this = first_reach(records["ml_exact"]["curve"], kl)
        ml_to_this = f"{ml_to_this:.1f}" if ml_to_this is not None else f"> {ml_ran:.0f}"
        lines.append(f"| {method} | {record['steps']} | {kl:.4f} ± {se:.4f} | {t:.1f} | {when} | {ratio} | {ml_to_this} |")
    return "\n".join(lines) + "\n"


def speed_up(records: dict[str, dict], method: str) -> dict:
    """How much sooner ``method`` got to its level than ML-exact: ``{"kl", "reached", "ratio"}``.

    Its level is the target (ML-exact's final KL) where it reached it, at the first mark that did; else its
    own last KL, at its last mark. ``ratio`` is ML-exact's first time at or below that level over the
    method's time at that mark (None only if a KL is NaN or that time is not positive).
    """
    ml_curve, (last_time, last_kl, _) = records["ml_exact"]["curve"], records[method]["curve"][-1]
    target = ml_curve[-1][1]
    reached = first_reach(records[method]["curve"], target)
    level, method_time = (target, reached) if reached is not None else (last_kl, last_time)
    ml_time = first_reach(ml_curve, level)
    ratio = ml_time / method_time if ml_time is not None and method_time > 0 else None
    return {"kl": last_kl, "reached": reached, "ratio": ratio}


def summary(saved_runs: list[dict]) -> str:
    """One markdown row per density, target, method, recipe and budget across saved ``--json`` runs (seeds).

    Each row lists every run's last KL, the mark where it reached the target, and its :func:`speed_up` ratio
    (to the target where reached, else to its own last KL), in the order the runs were given, and how many
    of its runs reached the target. Runs against different targets, at different rates, with different
    path times, schedules, batch sizes or fields get their own rows; records written before they kept their
    path times count as uniform, so such files from runs with ``--fast-times stratified`` must not be passed
    with others, and those written before they kept schedule, batch size and field (these are left out of
    their labels) get rows apart from later ones.
    """
    rows: dict[tuple, list[dict]] = {}
    for saved in saved_runs:
        for spec, density_run in saved.items():
            records = density_run["records"]
            target = records["ml_exact"]["curve"][-1][1]
            for method in records:
                if method != "ml_exact" and method in GRADIENT_METHODS:
                    own = budget(method, density_run["seconds"], density_run.get("fm_fraction", 1.0))
                    # records from before they kept their path times count as uniform, every method's default
                    times = records[method].get("times", "uniform") if method.startswith("fm_") else None
                    # settings records written before the fifteenth session's end did not keep: None, unknown
                    kept = tuple(_hashable(records[method].get(name)) for name in ("schedule", "batch_size", "hidden"))
                    recipe = (records[method].get("lr"), times, *kept)
                    key = (spec, target, method, recipe, own)
                    rows.setdefault(key, []).append(speed_up(records, method))
    lines = ["| density (target) | method (recipe), budget | last KL per run | reached the target at (s) "
             "| ML-exact time / time, to the same KL | reached |",
             "| --- | --- | --- | --- | --- | ---: |"]
    for (spec, target, method, (lr, times, schedule, batch_size, hidden), seconds), results in rows.items():
        kls = "; ".join(f"{result['kl']:.4f}" for result in results)
        reached = "; ".join("—" if result["reached"] is None else f"{result['reached']:.0f}" for result in results)
        speeds = "; ".join("—" if result["ratio"] is None else f"{result['ratio']:.1f}x" for result in results)
        count = sum(result["reached"] is not None for result in results)
        stratified = [f"{times} times"] if times not in (None, "uniform") else []
        kept = [label for value, label in ((schedule, f"{schedule}"), (batch_size, f"batch {batch_size}"),
                                           (hidden, f"hidden {'-'.join(map(str, hidden or ()))}")) if value is not None]
        recipe = ", ".join([*([f"lr {lr:g}"] if lr is not None else []), *stratified, *kept])
        rate = f" ({recipe})" if recipe else ""
        lines.append(f"| {spec} ({target:.4f}) | {method}{rate}, {seconds:.0f} s | {kls} | {reached} | {speeds} "
                     f"| {count} of {len(results)} |")
    return "\n".join(lines) + "\n"


def _hashable(value):
    """A record's setting as a row key: lists (a field's hidden widths) as tuples."""
    return tuple(value) if isinstance(value, list) else value


def main() -> None:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--densities", nargs="+", default=["eight_gaussians", "checkerboard", "two_moons", "gaussian_mixture:16"])
    parser.add_argument("--main-seconds", type=positive_number, default=300.0, help="budget B for the first density")
    parser.add_argument("--seconds", type=positive_number, default=120.0, help="budget B for the other densities")
    parser.add_argument("--every", type=positive_number, default=15.0, help="training seconds between KL measurements")
    parser.add_argument("--eval-n", type=positive_int, default=4000)
    parser.add_argument("--fm-fraction", type=positive_fraction, default=0.2,
                        help="flow matching trains for this fraction of B, with its schedule over that budget")
    parser.add_argument("--fm-batch", type=positive_int, default=Settings.fm_batch,
                        help="batch of the fm_* methods other than fm_ot (their steps are cheap)")
    parser.add_argument("--deep-hidden", type=positive_int, nargs="+", default=list(DEEP_HIDDEN),
                        help="hidden widths of ml_deep's and fm_deep's field")
    parser.add_argument("--methods", nargs="+", choices=(*GRADIENT_METHODS, *NONPARAMETRIC_METHODS),
                        default=[m for m in (*GRADIENT_METHODS, *NONPARAMETRIC_METHODS) if m not in OPT_IN_METHODS])
    parser.add_argument("--ml-lr", type=positive_number, default=Settings.ml_lr,
                        help="learning rate of ml_exact, ml_hutchinson and ml_deep")
    parser.add_argument("--fast-lr", type=positive_number, default=Settings.fast_lr, help="learning rate of fm_fast")
    parser.add_argument("--fast-schedule", choices=("constant", "cosine"), default=Settings.fast_schedule,
                        help="learning-rate schedule of fm_fast after its warm-up")
    parser.add_argument("--fast-times", choices=TIME_SAMPLINGS, default=Settings.fast_times,
                        help="how fm_fast draws its path times")
    parser.add_argument("--seed", type=seed_value, default=0, help="seed of the gradient-trained methods")
    parser.add_argument("--target-from", nargs="+", default=None,
                        help="take each density's ml_exact record (its target) from these earlier --json files: "
                             "of several, the one with the lowest final KL, the hardest target")
    parser.add_argument("--json", default=None, help="also write every curve here (updated after each method)")
    parser.add_argument("--quick", action="store_true", help="seconds-long smoke run")
    parser.add_argument("--from-json", nargs="+", default=None, help="only print the tables of saved --json files")
    parser.add_argument("--summary", nargs="+", default=None,
                        help="only print one row per density and method across saved --json files (say, seeds)")
    args = parser.parse_args()
    if args.summary:
        print(summary([json.loads(Path(path).read_text()) for path in args.summary]))
        return
    if args.from_json:
        for path in args.from_json:
            for spec, saved in json.loads(Path(path).read_text()).items():
                print(table(spec, saved["seconds"], saved["records"], saved.get("fm_fraction", 1.0)))
        return
    torch.set_num_threads(1)
    if args.quick:
        args.main_seconds = args.seconds = 4.0
        args.every, args.eval_n = 2.0, 500
    methods = ["ml_exact", *[m for m in args.methods if m != "ml_exact"]]
    earlier = [(path, json.loads(Path(path).read_text())) for path in args.target_from or []]
    settings = Settings(fm_batch=args.fm_batch, seed=args.seed, deep_hidden=tuple(args.deep_hidden), ml_lr=args.ml_lr,
                        fast_lr=args.fast_lr, fast_schedule=args.fast_schedule, fast_times=args.fast_times)
    print(machine_line(), flush=True)
    results: dict[str, dict] = {}
    for index, spec in enumerate(args.densities):
        density, seconds = make_density(spec), args.main_seconds if index == 0 else args.seconds
        dim = density.sample(1, generator=torch.Generator().manual_seed(0)).shape[-1]
        records: dict[str, dict] = {}
        target = None
        for method in methods:
            if method == "ml_exact" and args.target_from:
                records[method] = hardest_target(earlier, spec, seconds, args.eval_n)
            elif method in NONPARAMETRIC_METHODS:
                records[method] = fit_nonparametric(method, density, args.eval_n)
            else:
                own = budget(method, seconds, args.fm_fraction)
                curve = KLCurve(density, args.every, args.eval_n, stop_below=target, budget=own)
                records[method] = train_gradient(method, density, dim, own, curve, settings)
            if method == "ml_exact":
                target = records[method]["curve"][-1][1]
            t, kl, se = records[method]["curve"][-1]
            print(f"{spec} {method}: KL {kl:.4f} ± {se:.4f} at {t:.1f} s, {records[method]['steps']} steps", flush=True)
            results[spec] = {"seconds": seconds, "fm_fraction": args.fm_fraction, "records": records,
                             "deep_hidden": args.deep_hidden, "eval_n": args.eval_n}
            if args.json:
                Path(args.json).write_text(json.dumps(results, indent=1))
        print("\n" + table(spec, seconds, records, args.fm_fraction), flush=True)


if __name__ == "__main__":
    main()
