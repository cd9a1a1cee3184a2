"""Import every module of the installed ``morpho`` (CI's wheel check, run outside the checkout).

Usage: ``python import_all.py SOURCE_ROOT``. The modules are those
``pkgutil.walk_packages`` finds in the installed package together with every ``.py`` file
under ``SOURCE_ROOT/morpho`` (so a module that the wheel leaves out is named, not missed).
A module may fail only for a missing optional third-party package (an extra such as
``viz``); a missing ``morpho`` module, or morpho imported from a source tree, fails.
``__main__`` modules are left to ``python -m morpho``.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

import morpho


def module_names(source_root: Path) -> list[str]:
    """Dotted names of the installed modules and of the source tree's modules."""
    found = [m.name for m in pkgutil.walk_packages(morpho.__path__, "morpho.")]
    for path in (source_root / "morpho").rglob("*.py"):
        parts = path.relative_to(source_root).with_suffix("").parts
        found.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return sorted({n for n in found if not n.endswith("__main__")})


def main(source_root: Path) -> int:
    where = Path(morpho.__file__).resolve().parent
    if "site-packages" not in where.parts:
        print(f"morpho imported from {where}, not from an installed wheel")
        return 1
    names = module_names(source_root)
    failed, optional = [], []
    for name in names:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as err:
            if (err.name or "").split(".")[0] == "morpho":
                failed.append(f"{name}: {err}")
            else:
                optional.append(f"{name} (needs {err.name})")
    for line in optional:
        print("skipped, optional package missing:", line)
    if failed:
        print("cannot import from the wheel:", *failed, sep="\n  ")
        return 1
    print(f"imported {len(names) - len(optional)} of {len(names)} morpho modules from {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
