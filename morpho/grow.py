"""``grow``: the library function behind ``morpho grow`` — build, train, write the run.

    summary = grow(RunConfig.preset("small"), out="runs/demo")

Growth (the :class:`~morpho.scheduler.Scheduler`) runs unless ``cfg.growth["enabled"]`` is
false; ``config.toml`` records the resolved growth table with every rule's parameters.

Everything is validated (config, task, data) before the run directory is created, so bad
input leaves nothing on disk.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from morpho.config import RunConfig, dump_toml
from morpho.network import Network
from morpho.rundir import RunDir
from morpho.scheduler import GrowthConfig, Scheduler
from morpho.tasks import TASKS
from morpho.trainer import Callback, Trainer


def build_task(cfg: RunConfig) -> Any:
    """The configured task; ``ValueError`` on an unknown task or bad task options."""
    task_cls = TASKS.get(cfg.task)
    try:
        return task_cls(**cfg.task_options)
    except TypeError as e:
        raise ValueError(f"bad options for task {cfg.task!r}: {e}") from None


def build_network(cfg: RunConfig, vocab_size: int) -> Network:
    return Network(cfg.network.__class__(**{**cfg.network.__dict__, "vocab_size": vocab_size}))


def grow(cfg: RunConfig, out: str | os.PathLike[str], progress: bool = False,
         overwrite: bool = False, callbacks: list[Callback] | None = None) -> dict[str, Any]:
    """Train ``cfg`` into the run directory ``out``; returns the summary."""
    torch.manual_seed(cfg.train.seed)
    growth = GrowthConfig.from_dict(cfg.growth)
    task = build_task(cfg)
    net = build_network(cfg, task.vocab_size)
    run = RunDir(out, overwrite=overwrite)
    scheduler = [Scheduler(growth)] if growth.enabled else []
    trainer = Trainer(net, task, cfg.train, run=run, callbacks=[*scheduler, *(callbacks or [])],
                      progress=progress)  # fmt: skip
    resolved = {"network": {"vocab_size": task.vocab_size}, "growth": growth.to_dict()}
    run.create(dump_toml(cfg.merged(resolved).to_dict()))
    return trainer.fit()


def default_run_path(task: str) -> Path:
    """``runs/<task>-<n>`` with the first unused ``n``."""
    n = 0
    while (path := Path("runs") / f"{task}-{n}").exists():
        n += 1
    return path
