"""A held-out text no bench tunes on: the standard library's prose, written to one file.

The ``stdlib`` corpus reads only ``.py`` files and ``pydoc`` only ``pydoc_data.topics``; this
concatenates the other text the standard library ships — every ``.txt``, ``.rst`` and
``.html`` outside ``site-packages`` and ``test`` (IDLE's help and news, ``LICENSE.txt``,
``email/architecture.rst``, the lib2to3 grammars: ≈240 k characters on CPython 3.11), in
sorted path order.

    python benchmarks/heldout_text.py runs/heldout.txt
    python benchmarks/growth_saving.py --preset wide --grow benchmarks/grow_width_controls.toml \\
        --grown-steps 700 --data runs/heldout.txt --seeds 0 --rows grown schedule scratch ...
"""

from __future__ import annotations

import sys
import sysconfig
from pathlib import Path

SUFFIXES = (".txt", ".rst", ".html")
SKIPPED = {"site-packages", "test", "tests"}


def heldout_text() -> str:
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(
        p for p in root.rglob("*") if p.suffix in SUFFIXES and not SKIPPED & set(p.parts)
    )
    return "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in files)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python benchmarks/heldout_text.py OUT.txt")
    Path(sys.argv[1]).write_text(heldout_text(), encoding="utf-8")
