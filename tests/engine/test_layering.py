"""Layering law (DESIGN §1, STYLE 4): the engine imports no task, rule or renderer.

Every ``morpho/*.py`` is parsed and every import statement — module level or inside a
function, absolute or relative — is checked against the forbidden packages.

The layers, bottom up: config coercion, file writing and the device check
(``coerce``, ``files``, ``device``) import nothing above them; the core engine (tissue,
cells, network with its adaptive computation ``halting`` and record ``output``, edits,
surgery, trainer) imports no monitor or growth; only the top (``cli``, ``grow``) reads the
presets in ``morpho.config``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ENGINE = Path(__file__).resolve().parents[2] / "morpho"
FORBIDDEN = (
    "morpho.sims",
    "morpho.growth_rules",
    "morpho.viz",
    "sims",
    "growth_rules",
    "viz",
    "pyvista",
)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``path``."""
    package = "morpho"
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # from . import x / from .sims import y
                base = ".".join([package, base]) if base else package
            out.append((node.lineno, base))
            out += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module":
            if node.args and isinstance(node.args[0], ast.Constant):
                out.append((node.lineno, str(node.args[0].value)))
    return out


def is_forbidden(module: str) -> bool:
    return any(module == f or module.startswith(f + ".") for f in FORBIDDEN)


def test_engine_files_exist() -> None:
    names = {p.name for p in ENGINE.glob("*.py")}
    assert {"tissue.py", "network.py", "edits.py", "surgery.py", "cli.py"} <= names


@pytest.mark.parametrize("path", sorted(ENGINE.glob("*.py")), ids=lambda p: p.name)
def test_engine_module_imports_no_task_rule_or_renderer(path: Path) -> None:
    bad = [
        f"{path.name}:{line} imports {m}" for line, m in imported_modules(path) if is_forbidden(m)
    ]
    assert not bad, "the engine must not import tasks, rules or rendering: " + "; ".join(bad)


def test_the_scanner_sees_what_it_must_forbid(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import pyvista as pv\n"
        "from morpho import viz\n"
        "def f():\n"
        "    from .sims import lang\n"
        "    import growth_rules.mitosis\n"
        "    importlib.import_module('morpho.growth_rules.prune')\n"
        "from morpho.tissue import seed_tissue\n"
    )
    flagged = [m for _, m in imported_modules(probe) if is_forbidden(m)]
    assert flagged == [
        "pyvista",
        "morpho.viz",
        "morpho.sims",
        "morpho.sims.lang",
        "growth_rules.mitosis",
        "morpho.growth_rules.prune",
    ]


# the core engine: what every run executes; optional mechanisms plug into it from outside.
# ACT (halting.py) is part of the core: a network with ponder_max > 1 runs its tissue
# through it, and every forward record (output.py) carries its halting record.
CORE = (
    "tissue.py",
    "cells.py",
    "network.py",
    "halting.py",
    "output.py",
    "edits.py",
    "surgery.py",
    "trainer.py",
)
MONITORS = (
    "morpho.criticality",
    "morpho.entropy",
    "morpho.mechanisms",
    "morpho.growth",
    "morpho.scheduler",
)


@pytest.mark.parametrize("name", CORE)
def test_the_core_engine_imports_no_monitor(name: str) -> None:
    bad = [
        f"{name}:{line} imports {m}"
        for line, m in imported_modules(ENGINE / name)
        if any(m == f or m.startswith(f + ".") for f in MONITORS)
    ]
    assert not bad, "the core engine must not import monitors or growth: " + "; ".join(bad)


@pytest.mark.parametrize("path", sorted((ENGINE / "growth").glob("*.py")), ids=lambda p: p.name)
def test_the_growth_package_imports_no_task_rule_or_renderer(path: Path) -> None:
    assert not [m for _, m in imported_modules(path) if is_forbidden(m)]


def test_the_rule_interface_sits_at_the_bottom() -> None:
    engine = [m for _, m in imported_modules(ENGINE / "growth" / "rule.py") if "morpho" in m]
    assert {m.rsplit(".", 1)[0] if m.count(".") > 1 else m for m in engine} <= {
        "morpho.registry",
        "morpho.coerce",
    }, engine


@pytest.mark.parametrize(
    "path", sorted((ENGINE / "growth_rules").glob("*.py")), ids=lambda p: p.name
)
def test_growth_rules_import_only_the_rule_interface_and_the_tissue(path: Path) -> None:
    allowed = ("morpho.growth.rule", "morpho.tissue")
    bad = [
        m
        for _, m in imported_modules(path)
        if m.startswith("morpho") and not any(m == a or m.startswith(a + ".") for a in allowed)
    ]
    assert not bad, f"{path.name} imports {bad}"


# the bottom layer and what each may import of morpho
BOTTOM = {"coerce.py": set(), "device.py": set(), "files.py": {"morpho.coerce"}}


@pytest.mark.parametrize("name", sorted(BOTTOM))
def test_coercion_files_and_devices_sit_at_the_bottom(name: str) -> None:
    engine = {
        m.rsplit(".", 1)[0] if m.count(".") > 1 else m for _, m in imported_modules(ENGINE / name)
    }
    assert {m for m in engine if m.startswith("morpho")} <= BOTTOM[name]


PRESET_READERS = ("cli.py", "config.py", "grow.py")  # the top: commands and the run driver
LOW = [
    p
    for p in sorted([*ENGINE.glob("*.py"), *(ENGINE / "growth").glob("*.py")])
    if not (p.parent == ENGINE and p.name in PRESET_READERS)
]


@pytest.mark.parametrize("path", LOW, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_nothing_low_reaches_up_to_the_presets(path: Path) -> None:
    bad = [f"line {line}" for line, m in imported_modules(path) if m.startswith("morpho.config")]
    assert not bad, f"{path.name} imports morpho.config (the presets): {bad}"
