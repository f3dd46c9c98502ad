"""Time of each registered toy density's ``log_prob`` and ``sample`` on 10,000 points, one CPU thread.

    python benchmarks/toy_densities.py [--n 10000] [--repeats 5]

Prints a Markdown table: the best of ``--repeats`` timings per call, in milliseconds, for every density in
``ctflows.list_densities()`` at its default dimension. (The tests check what the densities compute; how fast
they do it is measured here.)
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ctflows  # noqa: E402
from ctflows.cli.arguments import OneLineParser, positive_int  # noqa: E402
from cnf_common import machine_line  # noqa: E402


def best_milliseconds(call: Callable[[], object], repeats: int) -> float:
    """The fastest of ``repeats`` runs of ``call()``, in milliseconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1e3 * min(times)


def main() -> None:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=positive_int, default=10_000)
    parser.add_argument("--repeats", type=positive_int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(machine_line() + "\n")
    print(f"| density | dim | log_prob, {args.n:,} points (ms) | sample, {args.n:,} points (ms) |")
    print("| --- | ---: | ---: | ---: |")
    for name in ctflows.list_densities():
        density = ctflows.get_density(name)
        x = density.sample(args.n, generator=torch.Generator().manual_seed(0))
        log_prob = best_milliseconds(partial(density.log_prob, x), args.repeats)
        sample = best_milliseconds(partial(density.sample, args.n), args.repeats)
        print(f"| {name} | {x.shape[-1]} | {log_prob:.1f} | {sample:.1f} |", flush=True)


if __name__ == "__main__":
    main()
