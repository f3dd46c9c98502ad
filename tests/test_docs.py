"""The python blocks of docs/*.md run as written, except those whose comment above says why they are not run.

README.md's blocks are run (and their results checked) by test_readme.py. Each block here is run on its own,
in a fresh namespace and a temporary directory, with torch's random state put back afterwards.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from doc_blocks import ROOT, Block, not_run_marks, python_blocks

DOCS = sorted((ROOT / "docs").glob("*.md"))
BLOCKS = [block for path in DOCS for block in python_blocks(path)]


@pytest.mark.parametrize("block", BLOCKS, ids=[f"{b.path.name}:{b.line}" for b in BLOCKS])
def test_docs_python_block_runs(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A block without a not-run comment runs to its end without raising."""
    if block.not_run:
        pytest.skip(f"not run: {block.not_run}")
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    try:
        with torch.random.fork_rng():
            exec(block.compiled(), {"__name__": "__docs__"})
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("path", DOCS, ids=[p.name for p in DOCS])
def test_every_not_run_comment_marks_a_python_block(path: Path) -> None:
    """Each not-run comment is the last non-blank line above a ```python fence, so a stray one cannot go unnoticed
    while the block it meant to mark is run (or the other way round)."""
    marked = sum(block.not_run is not None for block in python_blocks(path))
    assert marked == not_run_marks(path), f"{path.name}: a not-run comment is not directly above a ```python block"


def test_the_docs_have_a_python_block_that_runs() -> None:
    """At least one block is run, so that a marking mistake cannot turn this file into skips only."""
    assert any(block.not_run is None for block in BLOCKS), [f"{b.path.name}:{b.line}" for b in BLOCKS]
