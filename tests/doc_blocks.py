"""The ```python blocks of a Markdown file, for the tests that run them (test_readme.py, test_docs.py).

A block that is not meant to run as written (a sketch with names the reader supplies, or a measurement that
takes minutes) says so on the last non-blank line above its fence, in a comment that does not render:

    <!-- not run by tests/test_docs.py: a sketch; data and x are the reader's own tensors -->
    ```python
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from types import CodeType

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```python\n(.*?)^```", flags=re.S | re.M)
NOT_RUN = re.compile(r"<!-- not run by tests/test_docs\.py: (?P<reason>\S[^\n]*?) -->")


@dataclass(frozen=True)
class Block:
    """One python block: the file, the line its code starts on (1-based), the code, and why it is not run."""

    path: Path
    line: int
    code: str
    not_run: str | None

    def compiled(self) -> CodeType:
        """The code, compiled so that a traceback names the Markdown file and its line."""
        return compile("\n" * (self.line - 1) + self.code, str(self.path.relative_to(ROOT)), "exec")


def python_blocks(path: Path) -> list[Block]:
    """Every ```python block of ``path`` in order, with the reason it is not run where the last non-blank line above
    its fence gives one."""
    text = path.read_text()
    blocks = []
    for match in FENCE.finditer(text):
        above = text[: match.start()].rstrip("\n").rpartition("\n")[2]
        mark = NOT_RUN.fullmatch(above.strip())
        line = text.count("\n", 0, match.start(1)) + 1
        blocks.append(Block(path, line, match.group(1), mark.group("reason") if mark else None))
    return blocks


def not_run_marks(path: Path) -> int:
    """How many not-run comments ``path`` holds (attached to a block or not)."""
    return len(NOT_RUN.findall(path.read_text()))
