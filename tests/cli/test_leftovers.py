"""The note about an earlier run's files names them sorted, at most eight, and counts the rest."""
import os
from pathlib import Path

from ctflows.cli.leftovers import file_stamps, left_over, left_over_note


def test_the_note_lists_eight_sorted_names_and_counts_the_rest(tmp_path):
    names = [f"f{k:02d}.txt" for k in (11, 3, 7, 0, 10, 1, 9, 5, 2, 8, 4, 6)]
    for name in names:
        (tmp_path / name).write_text("x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "deep.txt").write_text("x")
    before = file_stamps(tmp_path)
    assert set(before) == {tmp_path / n for n in names} | {tmp_path / "sub" / "deep.txt"}  # files only, recursively
    assert left_over(tmp_path, before) == sorted(names) + [os.path.join("sub", "deep.txt")]
    note = left_over_note(tmp_path, before, still_to_write=("f00.txt",))
    assert note.endswith(": f01.txt, f02.txt, f03.txt, f04.txt, f05.txt, f06.txt, f07.txt, f08.txt and 4 more")
    (tmp_path / "sub" / "deep.txt").unlink()
    assert left_over_note(tmp_path, {p: s for p, s in before.items() if p.parent.name == "sub"}) is None


def test_the_note_counts_the_names_it_leaves_out_from_the_ninth_on(tmp_path: Path) -> None:
    """Eight left-over files are all named; a ninth is not shown but counted ("and 1 more"), never dropped silently."""
    for k in range(9):
        (tmp_path / f"f{k}.txt").write_text("x")
    before = file_stamps(tmp_path)
    assert left_over_note(tmp_path, before).endswith(": f0.txt, f1.txt, f2.txt, f3.txt, f4.txt, f5.txt, f6.txt, f7.txt and 1 more")
    assert left_over_note(tmp_path, before, still_to_write=("f8.txt",)).endswith(", f6.txt, f7.txt")
