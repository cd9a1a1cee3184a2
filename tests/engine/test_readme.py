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


def test_task_example_registers_a_task_that_grows(tmp_path: Path) -> None:
    from morpho.config import RunConfig
    from morpho.grow import grow
    from morpho.tasks import TASKS

    section = README.read_text(encoding="utf-8").split("## Adding a task", 1)[1]
    block = re.search(r"```python\n(.*?)```", section, re.S)
    assert block is not None, "the task section has a python block"
    exec(compile(block.group(1), "README.md", "exec"), {})  # noqa: S102
    cfg = RunConfig.preset("small").merged(
        {"task": "counting", "train": {"steps": 30, "eval_every": 30}}
    )
    summary = grow(cfg, tmp_path / "run")
    assert TASKS.get("counting").vocab_size == 10
    assert summary["val_bpc"] < 3.3  # log2(10) = 3.32 bits: it learned something
