"""The task interface the trainer sees, and the task registry.

A task serves batches of token sequences and says how big its vocabulary is; tasks live in
``morpho.sims`` (or a third-party package) and register under the ``morpho.tasks``
entry-point group, so the engine never imports them::

    task = TASKS.get("lang")(corpus="pydoc")
    x, y = task.batch("train", batch_size=16, seq_len=64, generator=gen)   # (B, T) long each
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor

from morpho.registry import Registry


class Task(Protocol):
    """What the trainer needs from a task."""

    name: str
    vocab_size: int

    def batch(
        self, split: str, batch_size: int, seq_len: int, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        """Random ``(inputs, targets)`` windows of ``split`` ("train"/"val"), each (B, T) long."""
        ...

    def eval_batches(
        self, n_batches: int, batch_size: int, seq_len: int
    ) -> list[tuple[Tensor, Tensor]]:
        """Fixed validation windows (the same every call), as (inputs, targets) pairs."""
        ...

    def describe(self) -> dict[str, object]:
        """JSON-able facts about the data (corpus, sizes) for ``summary.json``."""
        ...


TASKS: Registry[type] = Registry("task", entry_point_group="morpho.tasks")
