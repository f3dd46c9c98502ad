"""``report.md`` (a table, one row per model) and ``report.json`` (the same numbers, machine-readable)."""
from __future__ import annotations

import json
import math
import os
import platform
from pathlib import Path
from typing import Any, Sequence

import torch

REPORT_FILES = ("report.md", "report.json")  # written last, from everything else
KL_NOTE = "KL(p‖q) to the true density, Monte Carlo over {n} fresh samples (± one standard error)"
NLL_NOTE = "negative log-likelihood of the {n} held-out test rows (20% of the file; ± one standard error)"
BPD_NOTE = ("bits per dimension of the {n} held-out images, one dequantization draw each (an upper bound on the "
            "discrete bits/dim, Theis et al. 2016; ± one standard error); a model uniform over the {levels} gray levels scores "
            "log2 {levels} = {uniform:.3f}")


def machine() -> str:
    """A one-line description of where the numbers were measured."""
    cpu = platform.processor() or platform.machine()
    line = f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores ({cpu}), torch {torch.__version__}, {torch.get_num_threads()} thread(s)"
    if torch.cuda.is_available():
        line += f", GPU {torch.cuda.get_device_name()}"
    return line


def plus_minus(value: float | None, se: float | None, digits: int = 3) -> str:
    """``value ± se`` to ``digits`` decimals; "n/a" for a missing value, the value alone for a missing error."""
    if value is None:
        return "n/a"
    return f"{value:.{digits}f} ± {se:.{digits}f}" if se is not None else f"{value:.{digits}f}"


def _number(value: float | None, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def _quality(known_density: bool, image: bool) -> tuple[str, str, str]:
    """The quality column's heading, the row keys of its value and standard error, and the note explaining it."""
    if image:
        return "test bits/dim", "bpd", BPD_NOTE
    return ("KL (nats)", "kl", KL_NOTE) if known_density else ("test NLL (nats)", "nll", NLL_NOTE)


def table(rows: Sequence[dict[str, Any]], known_density: bool, image: bool = False) -> str:
    """The markdown table: quality first (KL, test NLL or test bits/dim), then size and cost columns."""
    quality, key, _ = _quality(known_density, image)
    head = ["model", quality, "parameters", "steps", "batch", "peak lr", "training (s)", "ms / step", "eval NFE", "samples / s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if r.get("error"):
            lines.append(f"| {r['model']} | failed: {r['error']} |" + " |" * (len(head) - 2))
            continue
        score = plus_minus(r[key], r[f"{key}_se"])
        per_step = None if r["seconds_per_step"] is None else 1000 * r["seconds_per_step"]
        cells = [r["model"], score, f"{r['parameters']:,}", f"{r['steps']:,}", f"{r['batch_size']:,}", f"{r['lr']:g}", _number(r["train_seconds"], ".1f"),
                 _number(per_step, ".1f"), _number(r["eval_nfe"], ".0f"), _number(r["samples_per_second"], ",.0f")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(out: Path, header: dict[str, Any], rows: Sequence[dict[str, Any]], notes: Sequence[str]) -> tuple[Path, Path]:
    """Write ``out/report.md`` and ``out/report.json``; returns both paths.

    ``header`` holds the run's settings (data, dim, seed, budget, device, machine, figure, animations; for
    images ``image`` and ``levels``).
    """
    known, image, levels = header.get("known_density", False), header.get("image", False), header.get("levels") or 2
    measured = [r for r in rows if not r.get("error")]
    n = measured[0]["eval_points"] if measured else 0
    speed = measured[0].get("speed_samples", 10_000) if measured else 10_000
    md = [
        f"# ctflows compare: {header['data']}", "",
        f"Data `{header['data']}` (D = {header['dim']}), seed {header['seed']}, budget {header['budget']} per model, "
        f"device {header['device']}.", f"Machine: {header['machine']}.", f"Command: `{header['command']}`", "",
        table(rows, known, image), "",
        _quality(known, image)[2].format(n=n, levels=levels, uniform=math.log2(levels)) + ". ms / step: median wall time of a training step. "
        f"eval NFE: mean field evaluations per exact log_prob batch (CNFs). samples / s: {speed:,} samples in eval mode.",
        "",
    ]
    if header.get("figure"):
        what = "held-out images and samples of each model" if image else "density, samples and map of each model"
        md += [f"![{what}]({header['figure']})", ""]
    for name, gif in (header.get("animations") or {}).items():
        md += [f"Density of `{name}` from data (t = 0) to base (t = T): ![{name}]({gif})", ""]
    md += [f"- {note}" for note in notes]
    out.mkdir(parents=True, exist_ok=True)
    md_path, json_path = (out / name for name in REPORT_FILES)
    md_path.write_text("\n".join(md).rstrip() + "\n", encoding="utf-8")
    json_path.write_text(json.dumps({**header, "models": list(rows), "notes": list(notes)}, indent=2) + "\n", encoding="utf-8")
    return md_path, json_path
