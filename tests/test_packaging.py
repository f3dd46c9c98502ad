"""The installed package, not the source tree: a wheel built from pyproject.toml holds every module, and they import.

Every other test (the tutorials' included) runs against the editable install, which reads the source tree, so a
subpackage that the wheel would leave out (a folder without ``__init__.py``, a too narrow ``packages.find``) would
pass them all and break every user's ``pip install``.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Every module of the wheel (but __main__, which runs the command) imported from the wheel's own copy.
IMPORT_ALL = """
import importlib, pkgutil, sys
import ctflows
assert ctflows.__file__.startswith(sys.argv[1]), ctflows.__file__
names = [m.name for m in pkgutil.walk_packages(ctflows.__path__, "ctflows.") if not m.name.endswith(".__main__")]  # runs a command
for name in names:
    assert importlib.import_module(name).__file__.startswith(sys.argv[1]), name
print(len(names))
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    pytest.importorskip("setuptools", minversion="77")  # the build backend pyproject.toml asks for
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "ctflows", source / "ctflows", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    # No build isolation: CI has no network beyond the package index, and the set-up already installed setuptools.
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", str(out), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (built,) = out.glob("ctflows-*.whl")
    return built


def test_the_wheel_holds_every_module_of_the_source_tree(wheel):
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "ctflows").rglob("*.py") if "__pycache__" not in p.parts}
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = archive.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    assert modules - names == set(), "left out of the wheel"
    assert {n for n in names if n.startswith("ctflows/")} == modules, "in the wheel but not in the source tree"
    assert "ctflows = ctflows.cli.main:main" in entry_points


def test_every_module_imports_from_the_installed_wheel(wheel, tmp_path):
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)  # a pure-Python wheel installs by unpacking
    env = {"PYTHONPATH": str(site), "MPLBACKEND": "Agg", "PATH": ""}
    # From tmp_path: "-c" puts the working directory first on sys.path, and the source tree must not be it.
    done = subprocess.run([sys.executable, "-c", IMPORT_ALL, str(site)], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert int(done.stdout) > 100
    done = subprocess.run([sys.executable, "-m", "ctflows.cli", "--help"], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert done.returncode == 0 and "usage" in done.stdout, done.stderr[-3000:]
