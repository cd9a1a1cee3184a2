"""The README's engine example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_engine_example_runs() -> None:
    text = README.read_text(encoding="utf-8")
    section = text.split("## The engine in Python", 1)[1]
    block = re.search(r"```python\n(.*?)```", section, re.S)
    assert block is not None, "the engine section has a python block"
    scope: dict[str, object] = {}
    exec(compile(block.group(1), "README.md", "exec"), scope)  # noqa: S102
    net = scope["net"]
    assert net.tissue.num_nodes == 13  # type: ignore[attr-defined]  # 12 + split + insert − remove
