"""docs/reliability.md quotes error messages in its tables; this module raises each one and compares it whole.

The tables whose second column is "what it gets" (tensors given to a layer or a model, Flow.sample's
arguments, ctflows.load_array's files) say, row by row, which input gets which message. Every backtick
quote in such a cell that is a message is compared with the error the row's input raises, in full:
``"InputError: ..."`` against ``f"{type(e).__name__}: {e}"``, a quote without the class against ``str(e)``;
``...`` and ``(...)`` in a quote stand for text the doc leaves out. Rows are read from the doc itself, so:

- a row with neither a case in ``CASES`` nor a reason in ``PROSE`` fails (a new row needs a case);
- a case or a reason whose row is gone fails (a reworded first cell needs the key renamed here);
- a backtick span in a case's row that is neither checked nor listed as not a message fails;
- a table of another kind fails unless ``OTHER_TABLES`` says why it quotes no messages.

tests/test_bad_input.py and tests/data/ check the same errors over many inputs, by fragments; this module
checks the exact wording the reader sees, for the one input each row names.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

from ctflows import AffineCoupling, Flow, StandardNormal, load_array
from ctflows.errors import CtflowsError, DataError
from data.test_files import write
from doc_blocks import ROOT

DOC = ROOT / "docs" / "reliability.md"
MESSAGE_COLUMN = "what it gets"

# Tables of another kind, by their header, and why none of their cells quotes a message.
OTHER_TABLES: dict[tuple[str, str], str] = {
    ("`on_nonfinite`", "on a non-finite step"): "what fit does, in words; TrainingError is named, not quoted",
    ("family", "bugs found by the mutants"): "bugs found by mutation testing; the quotes are code, not messages",
}

# Rows of a message table whose cell is prose, not a message, by their first cell, and why.
PROSE: dict[str, str] = {
    "a context of another dtype, device, or not a tensor":
        "the input's messages with `context` for `input`; the input rows pin their wording",
    "a context of the wrong width, 3-D, NaN, another dtype, or a list":
        "the input messages owned by Flow.sample; the input rows pin their wording",
    "a 0-D, 3-D or zero-size array, bool / complex / string / structured / object dtype, a `.npz` archive named `.npy`":
        "names only the class (DataError); tests/data/test_bad_files.py checks each of these files",
}

BACKTICKS = re.compile(r"`([^`]+)`")
CELL_SEPARATOR = re.compile(r"(?<!\\)\|")  # "\|" inside a cell is a literal bar
PLACEHOLDER = re.compile(r"\(\.\.\.\)|\.\.\.")


@dataclass(frozen=True)
class Row:
    """One body row of a Markdown table: its table's header, its cells (stripped) and its line in the file."""

    header: tuple[str, ...]
    cells: tuple[str, ...]
    line: int

    @property
    def key(self) -> str:
        return self.cells[0]

    @property
    def quotes(self) -> list[str]:
        """The backtick spans of the second cell, in order."""
        return BACKTICKS.findall(self.cells[1])


def markdown_tables(path: Path) -> list[list[Row]]:
    """Every table of ``path`` (a header line, a ``| --- |`` line, then rows), as its body rows."""
    tables: list[list[Row]] = []
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        if not (lines[i].startswith("|") and i + 1 < len(lines) and re.fullmatch(r"\|[\s:|-]+\|", lines[i + 1])):
            i += 1
            continue
        header = cells(lines[i])
        rows = []
        i += 2
        while i < len(lines) and lines[i].startswith("|"):
            rows.append(Row(header, cells(lines[i]), i + 1))
            i += 1
        tables.append(rows)
    return tables


def cells(line: str) -> tuple[str, ...]:
    return tuple(cell.strip() for cell in CELL_SEPARATOR.split(line.strip().strip("|")))


TABLES = markdown_tables(DOC)
MESSAGE_ROWS = [row for table in TABLES for row in table if row.header[1:2] == (MESSAGE_COLUMN,)]


# --- what the rows' inputs raise -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Got:
    """An error raised for a quote, and where the quote sits in its message: ``frame`` is the message with ``{}``
    for the quote and ``(...)`` for what the doc does not quote (the default: the quote is the whole message)."""

    error: BaseException
    frame: str = "{}"


@dataclass(frozen=True)
class Case:
    """How to reproduce a row: ``run(tmp_path)`` gives one :class:`Got` per message quote of the row, in order;
    ``not_messages`` are the row's other backtick spans (a file type, an index)."""

    run: Callable[[Path], list[Got]]
    not_messages: tuple[str, ...] = ()


def raised(call: Callable[[], object]) -> CtflowsError:
    with pytest.raises(CtflowsError) as info:
        call()
    return info.value


@functools.cache
def layer(conditional: bool) -> AffineCoupling:
    """The doc's model: ``AffineCoupling(3, hidden=(8,)).double()``, or its version with ``context_features=2``."""
    torch.manual_seed(0)
    return AffineCoupling(3, hidden=(8,), context_features=2 if conditional else None).double()


@functools.cache
def flow(conditional: bool) -> Flow:
    """The same layer in a Flow, for Flow.sample."""
    torch.manual_seed(0)
    coupling = AffineCoupling(3, hidden=(8,), context_features=2 if conditional else None)
    return Flow(coupling, StandardNormal(3)).double()


def x(*shape: int, dtype: torch.dtype = torch.float64, device: str = "cpu") -> torch.Tensor:
    return torch.zeros(shape, dtype=dtype, device=device)


def into_layer(value: object, context: torch.Tensor | None = None, conditional: bool = False) -> list[Got]:
    return [Got(raised(lambda: layer(conditional)(value, context)))]


def nan_at(shape: tuple[int, ...], *where: tuple[int, ...]) -> torch.Tensor:
    t = x(*shape)
    for index in where:
        t[index] = float("nan")
    return t


def loaded(name: str, content: str | np.ndarray, tmp_path: Path) -> DataError:
    """The DataError of ``load_array(name)`` for a file ``name`` in ``tmp_path`` (the working directory, so that
    the message starts with the name as the doc writes it)."""
    if isinstance(content, str):
        write(tmp_path, name, content)
    else:
        with open(tmp_path / name, "wb") as handle:  # np.save(path) would add ".npy" to another name
            np.save(handle, content)
    with pytest.raises(DataError) as info:
        load_array(name)
    return info.value


def nan_npy(tmp_path: Path) -> DataError:
    array = np.zeros((3, 2))
    array[2, 1] = np.nan
    return loaded("nan.npy", array, tmp_path)


CASES: dict[str, Case] = {
    # Tensors given to a layer or a model
    "wrong number of dims (`[3]`, `[B, 3, 1]`, a scalar)": Case(lambda _: into_layer(x(3))),
    "wrong event size (`[4, 5]`)": Case(lambda _: into_layer(x(4, 5))),
    "empty batch (`[0, 3]`)": Case(lambda _: into_layer(x(0, 3))),
    "NaN, +Inf or -Inf anywhere": Case(lambda _: into_layer(nan_at((4, 3), (2, 1)))),
    "integer, bool, uint8 or complex dtype": Case(lambda _: into_layer(x(4, 3, dtype=torch.int64))),
    "float16, bfloat16 or float32 into a float64 model (and any other floating mismatch)":
        Case(lambda _: into_layer(x(4, 3, dtype=torch.float32))),
    "a tensor on another device (`meta` here; `cuda` in the CUDA-only test)":
        Case(lambda _: into_layer(x(4, 3, device="meta"))),
    "a list or a NumPy array": Case(lambda _: into_layer(np.zeros((4, 3)))),
    "a context given to an unconditional layer or model": Case(lambda _: into_layer(x(4, 3), x(4, 2))),
    "no context for a conditional layer": Case(lambda _: into_layer(x(4, 3), None, conditional=True)),
    "a context of the wrong width": Case(lambda _: into_layer(x(4, 3), x(4, 1), conditional=True)),
    "a context with another batch size": Case(lambda _: into_layer(x(4, 3), x(2, 2), conditional=True)),
    "a context with NaN / Inf":
        Case(lambda _: into_layer(x(4, 3), torch.full((4, 2), float("nan"), dtype=torch.float64), conditional=True)),
    # Sampling arguments (Flow.sample)
    "`n` of 0 or below, a float (also `3.0`), a string, `None`, a tensor with dimensions, "
    "or `True` (also NumPy's and torch's)":
        Case(lambda _: [Got(raised(lambda: flow(False).sample(True)))]),
    "a context for an unconditional model": Case(lambda _: [Got(raised(lambda: flow(False).sample(5, x(5, 2))))]),
    "no context for a conditional model": Case(lambda _: [Got(raised(lambda: flow(True).sample(5)))]),
    "a context with a row count other than 1 or `n`":
        Case(lambda _: [Got(raised(lambda: flow(True).sample(5, x(3, 2))))]),
    # Data files (ctflows.load_array)
    "ragged rows": Case(lambda tmp: [Got(loaded("bad.csv", "x,y\n1,2\n3,4\n5,6,7\n", tmp))]),
    "a non-numeric or empty cell": Case(lambda tmp: [Got(loaded("bad.csv", "x,y\n1,x\n", tmp))]),
    "another separator": Case(lambda tmp: [Got(loaded("semi.csv", "a;b\n1;2\n", tmp))]),
    "NaN, ±Inf, or a number beyond float32": Case(
        lambda tmp: [Got(loaded("bad.csv", "x,y\n1e39,2\n", tmp)), Got(nan_npy(tmp))],
        not_messages=(".npy", "a[2, 1]"),
    ),
    "an empty file, blank lines only, a header without rows": Case(
        lambda tmp: [
            Got(loaded("bad.csv", "", tmp)),
            Got(loaded("bad.csv", "x,y\n", tmp), "bad.csv: {}"),  # the doc quotes the message after the path
            Got(loaded("empty.npy", "", tmp), "empty.npy: {} (...)"),  # ... and before numpy's reason
        ],
        not_messages=(".npy",),
    ),
    "a wrong extension (`.txt`, `.json`, `.npz`, `.csv.gz`, none)":
        Case(lambda tmp: [Got(loaded("table.txt", "1,2\n", tmp))]),
    "a 1-D array": Case(lambda tmp: [Got(loaded("vector.npy", np.arange(5.0), tmp))]),
}


# --- comparing ---------------------------------------------------------------------------------------------------


def message_quotes(row: Row) -> list[str]:
    not_messages = CASES[row.key].not_messages
    return [quote for quote in row.quotes if quote not in not_messages]


def matches(quote: str, got: Got) -> tuple[bool, str, str]:
    """Whether the error's text is what the doc quotes; and the text and the expectation, for the message."""
    name = type(got.error).__name__
    text = f"{name}: {got.error}" if quote.startswith(f"{name}: ") else str(got.error)
    expected = got.frame.replace("{}", quote)
    if text == expected:
        return True, text, expected
    if PLACEHOLDER.search(expected):
        regex = ".*".join(map(re.escape, PLACEHOLDER.split(expected)))
        return re.fullmatch(regex, text, flags=re.S) is not None, text, expected
    return False, text, expected


@pytest.mark.parametrize("row", [row for row in MESSAGE_ROWS if row.key not in PROSE], ids=lambda row: row.key)
def test_the_doc_quotes_the_message_its_row_raises(row: Row, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if row.key not in CASES:
        pytest.fail(f"docs/reliability.md has a row {row.key!r} that tests/test_reliability_doc.py does not reproduce")
    case = CASES[row.key]
    stray = [span for span in case.not_messages if span not in row.quotes]
    assert not stray, f"line {row.line}: not_messages {stray} are not in the row's cell any more"
    quotes = message_quotes(row)
    monkeypatch.chdir(tmp_path)
    got = case.run(tmp_path)
    assert len(got) == len(quotes), (
        f"docs/reliability.md line {row.line} quotes {len(quotes)} message(s) {quotes} but the case checks {len(got)}; "
        "check the new quote, or list it in not_messages if it is not a message"
    )
    for quote, one in zip(quotes, got):
        ok, text, expected = matches(quote, one)
        assert ok, f"docs/reliability.md line {row.line} quotes\n  {expected}\nbut the error is\n  {text}"


def test_every_case_and_every_prose_row_has_its_row_in_the_doc() -> None:
    keys = {row.key for row in MESSAGE_ROWS}
    for key in [*CASES, *PROSE]:
        assert key in keys, (
            f"tests/test_reliability_doc.py reproduces a row {key!r} that docs/reliability.md no longer has"
        )
    assert not set(CASES) & set(PROSE)


def test_first_cells_name_one_row_each() -> None:
    keys = [row.key for row in MESSAGE_ROWS]
    assert len(keys) == len(set(keys)), sorted(key for key in keys if keys.count(key) > 1)


def test_prose_rows_quote_no_message() -> None:
    """A skipped row must stay prose: a quote with an owner's "name: " in it is a message and needs a case."""
    for row in MESSAGE_ROWS:
        if row.key in PROSE:
            assert not [q for q in row.quotes if ": " in q], f"line {row.line}: {row.key!r} now quotes a message"


def test_every_table_quotes_messages_in_the_column_read_here_or_is_listed_as_another_kind() -> None:
    headers = {(table[0].header + ("",))[:2] for table in TABLES if table}
    assert {h for h in headers if h[1] != MESSAGE_COLUMN} <= set(OTHER_TABLES), headers
    assert set(OTHER_TABLES) <= headers, "a table listed in OTHER_TABLES is gone from docs/reliability.md"
    assert MESSAGE_ROWS, f"no table of docs/reliability.md has a {MESSAGE_COLUMN!r} column"
