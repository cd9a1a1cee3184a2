"""The task interface the trainer sees, and the task registry.

A task serves batches of ``(inputs, targets)`` and says what it is; tasks live in
``morpho.sims`` (or a third-party package) and register under the ``morpho.tasks``
entry-point group, so the engine never imports them::

    task = TASKS.get("lang")(corpus="pydoc")
    x, y = task.batch("train", batch_size=16, seq_len=64, generator=gen)   # (B, T) long each

Two kinds (``task.kind``; a task without the attribute is a language task):

* ``"lm"`` — next-token prediction: inputs (B, T) token ids, targets (B, T) the next ids;
  the trainer reports cross-entropy in bits per token (``val_bpc``);
* ``"classify"`` — one class per example: inputs (B, T, k) float features (an image as
  ``T`` rows or patches of ``k`` pixels), targets (B, 1) class ids; the network reads the
  class at the last position and the trainer reports ``val_loss`` and ``val_acc``. Such a
  task fixes its own shape (``seq_len``, ``input_dim``); :func:`task_overrides` puts it
  into the run config.

A task whose training data change over the run (a stream of tasks) may also define
``at_step(step)``: the trainer calls it with the optimizer step before every training
batch, so a resumed run draws from the same part of the stream as an uninterrupted one.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import Tensor

from morpho.registry import Registry

TASK_KINDS = ("lm", "classify")


class Task(Protocol):
    """What the trainer needs from a task (``kind``, ``input_dim`` and ``seq_len`` are
    optional: a task without them is a language task of token ids of any length)."""

    name: str

    @property
    def vocab_size(self) -> int:
        """Tokens in the vocabulary, or classes: the width of the network's head."""
        ...

    def batch(
        self, split: str, batch_size: int, seq_len: int, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        """Random ``(inputs, targets)`` of ``split`` ("train"/"val"); shapes as its kind says."""
        ...

    def eval_batches(
        self, n_batches: int, batch_size: int, seq_len: int
    ) -> list[tuple[Tensor, Tensor]]:
        """Fixed validation batches (the same every call), as (inputs, targets) pairs. A
        classification task serves its whole split (``n_batches`` aside) and also takes
        ``split="test"``: the held-out split the trainer scores once, at the end."""
        ...

    def describe(self) -> dict[str, object]:
        """JSON-able facts about the data (corpus, sizes) for ``summary.json``."""
        ...


class ClassifyTask(Task, Protocol):
    """A classification task: its inputs' fixed shape, and a test split to score."""

    kind: str  # "classify"
    seq_len: int  # tokens an example is cut into
    input_dim: int  # features per token

    def eval_batches(  # type: ignore[override]
        self, n_batches: int, batch_size: int, seq_len: int, split: str = "val"
    ) -> list[tuple[Tensor, Tensor]]:
        """The whole ``split`` ("val" or "test"), in order."""
        ...


def task_kind(task: Any) -> str:
    """``"lm"`` or ``"classify"`` (``ValueError`` naming the choices on anything else)."""
    kind = getattr(task, "kind", "lm")
    if kind not in TASK_KINDS:
        raise ValueError(f"task kind {kind!r}; expected one of: {', '.join(TASK_KINDS)}")
    return str(kind)


def task_overrides(task: Any, readout: str = "all") -> dict[str, Any]:
    """The run-config values a task fixes: the head's width, and for a classification task
    its inputs' shape (``network.input_dim``, ``train.seq_len``) and a readout once per
    example (the configured ``readout``, or ``"last"`` where it is ``"all"``)."""
    out: dict[str, Any] = {"network": {"vocab_size": task.vocab_size}}
    if task_kind(task) == "classify":
        once = "last" if readout == "all" else readout
        out["network"].update(input_dim=int(task.input_dim), readout=once)
        out["train"] = {"seq_len": int(task.seq_len)}
    return out


TASKS: Registry[type] = Registry("task", entry_point_group="morpho.tasks")
