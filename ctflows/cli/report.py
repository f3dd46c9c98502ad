"""``report.md`` (a table, one row per model) and ``report.json`` (the same numbers, machine-readable)."""
from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any, Sequence

import torch

KL_NOTE = "KL(p‖q) to the true density, Monte Carlo over {n} fresh samples (± one standard error)"
NLL_NOTE = "negative log-likelihood of the {n} held-out test rows (20% of the file; ± one standard error)"


def machine() -> str:
    """A one-line description of where the numbers were measured."""
    cpu = platform.processor() or platform.machine()
    line = f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores ({cpu}), torch {torch.__version__}, {torch.get_num_threads()} thread(s)"
    if torch.cuda.is_available():
        line += f", GPU {torch.cuda.get_device_name()}"
    return line


def _pm(value: float | None, se: float | None, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    return f"{value:.{digits}f} ± {se:.{digits}f}" if se is not None else f"{value:.{digits}f}"


def _number(value: float | None, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def table(rows: Sequence[dict[str, Any]], known_density: bool) -> str:
    """The markdown table: quality first (KL or test NLL), then size and cost columns."""
    quality = "KL (nats)" if known_density else "test NLL (nats)"
    head = ["model", quality, "parameters", "steps", "training (s)", "ms / step", "eval NFE", "samples / s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if r.get("error"):
            lines.append(f"| {r['model']} | failed: {r['error']} |" + " |" * (len(head) - 2))
            continue
        score = _pm(r["kl"], r["kl_se"]) if known_density else _pm(r["nll"], r["nll_se"])
        per_step = None if r["seconds_per_step"] is None else 1000 * r["seconds_per_step"]
        cells = [r["model"], score, f"{r['parameters']:,}", f"{r['steps']:,}", _number(r["train_seconds"], ".1f"),
                 _number(per_step, ".1f"), _number(r["eval_nfe"], ".0f"), _number(r["samples_per_second"], ",.0f")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(out: Path, header: dict[str, Any], rows: Sequence[dict[str, Any]], notes: Sequence[str]) -> tuple[Path, Path]:
    """Write ``out/report.md`` and ``out/report.json``; returns both paths.

    ``header`` holds the run's settings (data, dim, seed, budget, device, machine, figure, animations).
    """
    known = header.get("known_density", False)
    n = next((r["eval_points"] for r in rows if not r.get("error")), 0)
    md = [
        f"# ctflows compare: {header['data']}", "",
        f"Data `{header['data']}` (D = {header['dim']}), seed {header['seed']}, budget {header['budget']} per model, "
        f"device {header['device']}.", f"Machine: {header['machine']}.", f"Command: `{header['command']}`", "",
        table(rows, known), "",
        (KL_NOTE if known else NLL_NOTE).format(n=n) + ". ms / step: median wall time of a training step. "
        "eval NFE: mean field evaluations per exact log_prob batch (CNFs). samples / s: 10,000 samples in eval mode.",
        "",
    ]
    if header.get("figure"):
        md += [f"![density, samples and map of each model]({header['figure']})", ""]
    for name, gif in (header.get("animations") or {}).items():
        md += [f"Density of `{name}` from data (t = 0) to base (t = T): ![{name}]({gif})", ""]
    md += [f"- {note}" for note in notes]
    out.mkdir(parents=True, exist_ok=True)
    md_path, json_path = out / "report.md", out / "report.json"
    md_path.write_text("\n".join(md).rstrip() + "\n", encoding="utf-8")
    json_path.write_text(json.dumps({**header, "models": list(rows), "notes": list(notes)}, indent=2) + "\n", encoding="utf-8")
    return md_path, json_path
