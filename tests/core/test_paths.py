"""as_path and existing_file: a str or os.PathLike becomes a Path; anything else is the caller's error, by name."""
from __future__ import annotations

from pathlib import Path

import pytest

from ctflows.core.paths import as_path, existing_file
from ctflows.errors import CheckpointError, ConfigurationError, DataError


@pytest.mark.parametrize("value", ["runs/a", Path("runs/a")])
def test_a_str_or_pathlike_becomes_that_path(value: object) -> None:
    assert as_path("fit", "checkpoint_dir", value, "runs/a") == Path("runs/a")


@pytest.mark.parametrize("error", [ConfigurationError, CheckpointError, DataError])
@pytest.mark.parametrize("value", [None, 3, b"runs/a", ["runs/a"]], ids=["none", "int", "bytes", "list"])
def test_anything_else_is_the_callers_error_naming_owner_argument_and_example(value: object, error: type) -> None:
    with pytest.raises(error) as info:
        as_path("fit", "checkpoint_dir", value, "runs/a", error)
    assert str(info.value) == f"fit: checkpoint_dir must be a str or os.PathLike such as 'runs/a', got {type(value).__name__} {value!r}"


def test_existing_file_refuses_a_missing_path_and_a_directory(tmp_path: Path) -> None:
    (tmp_path / "table.csv").write_text("1\n")
    assert existing_file("load_array", tmp_path / "table.csv", "data.csv") == tmp_path / "table.csv"
    with pytest.raises(DataError, match=r"^.*missing.csv: no such file$"):
        existing_file("load_array", str(tmp_path / "missing.csv"), "data.csv")
    with pytest.raises(DataError, match=r"^.*: not a regular file$"):
        existing_file("load_array", tmp_path, "data.csv")
    with pytest.raises(DataError, match=r"^load_array: path must be"):
        existing_file("load_array", 3, "data.csv")
