"""Packaging law: every ``morpho`` subpackage, and its data files, ship in the wheel.

The fast test asks setuptools which packages ``pyproject.toml`` makes it put in a
distribution; the slow one builds the wheel and reads its file list. Both compare
against every directory under ``morpho/`` that holds an ``__init__.py``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def source_packages() -> set[str]:
    """Dotted names of every directory under ``morpho/`` with an ``__init__.py``."""
    inits = (ROOT / "morpho").rglob("__init__.py")
    return {".".join(p.parent.relative_to(ROOT).parts) for p in inits}


def test_the_source_tree_has_subpackages() -> None:
    assert {"morpho", "morpho.growth", "morpho.sims"} <= source_packages()


def test_setuptools_puts_every_subpackage_in_the_distribution(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("setuptools", reason="reads setuptools' package discovery")
    from setuptools.config.pyprojecttoml import apply_configuration
    from setuptools.dist import Distribution

    monkeypatch.chdir(ROOT)  # discovery runs relative to the project root
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "[tool.setuptools] is beta" on older setuptools
        dist = apply_configuration(Distribution(), ROOT / "pyproject.toml")
        dist.set_defaults()
    missing = source_packages() - set(dist.packages or ())
    assert not missing, f"pyproject.toml leaves these packages out of the wheel: {missing}"


@pytest.mark.slow
def test_the_built_wheel_holds_every_subpackage(tmp_path: Path) -> None:
    src = tmp_path / "src"  # a clean copy: a stale build/ in the checkout would leak into the wheel
    shutil.copytree(ROOT / "morpho", src / "morpho", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):  # (the copy keeps morpho's data files)
        shutil.copy(ROOT / name, src / name)
    cmd = [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps"]
    cmd += ["--no-build-isolation", "-q", "-w", str(tmp_path / "dist")]
    subprocess.run(cmd, check=True, cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("morpho-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {n.removesuffix("/__init__.py").replace("/", ".") for n in names}
    missing = source_packages() - shipped
    assert not missing, f"the wheel lacks {missing}"
    data = {  # package data: every file under morpho/ that is not Python source
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "morpho").rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
    }
    assert data <= names, f"the wheel lacks package data {data - names}"
