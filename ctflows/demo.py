"""What ``make demo`` runs: ``ctflows compare`` on a built-in 2-D density, then says where the report is.

    python -m ctflows.demo [--data eight_gaussians] [--models realnvp,spline,cnf,cnf-fm] [--minutes 0.75] [--out demo-output]

Each model trains for the same wall-clock budget on the same data and seed; the report
(``DIR/report.md``: KL ± standard error, parameters, time per step, evaluation NFE, sampling speed) comes
with a figure (``DIR/figure.png``) and, for the CNFs, GIFs of the density moving from data to base.
"""
from __future__ import annotations

import argparse
import sys

from ctflows.cli.main import main as ctflows_main

MODELS = "realnvp,spline,cnf,cnf-fm"


def main(argv: list[str] | None = None) -> int:
    """Run the demo comparison; returns ``ctflows compare``'s exit status. Extra flags go to ``compare``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="eight_gaussians", help="a built-in 2-D density")
    parser.add_argument("--models", default=MODELS)
    parser.add_argument("--minutes", default="0.75", help="training budget per model (default 0.75)")
    parser.add_argument("--out", default="demo-output")
    args, rest = parser.parse_known_args(argv)
    command = ["compare", "--data", args.data, "--models", args.models, "--minutes", args.minutes, "--out", args.out, *rest]
    print("ctflows " + " ".join(command), flush=True)
    status = ctflows_main(command)
    if status == 0:
        print(f"Done: open {args.out}/report.md (table) and {args.out}/figure.png (figure).")
    return status


if __name__ == "__main__":
    sys.exit(main())
