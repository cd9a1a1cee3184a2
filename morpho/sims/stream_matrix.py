"""The accuracy matrix of a stream: every task scored on its own split, by the trainer's
network at each task's end (:class:`MatrixRecorder`, a trainer callback that logs each row
to the run's ``metrics.jsonl``) or by a closed-form learner (:func:`score_tasks`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from morpho.callbacks import Callback
from morpho.sims.cl_methods import MethodContext, boundary

if TYPE_CHECKING:
    from morpho.trainer import Trainer

LN2 = math.log(2.0)


@torch.no_grad()
def score_tasks(logits: Callable[[Any], Any], task: Any, split: str) -> list[float]:
    """Each task's score on ``split``: accuracy % over its columns, or bits per token."""
    scores = []
    for t in range(task.n_tasks):
        cols = task.task_columns(t) if getattr(task, "task_id_given", False) else None
        total, n = 0.0, 0
        for x, y in task.task_batches(t, split, 256):
            out = logits(x)  # (B, T, V)
            if task.kind == "lm":
                total += float(F.cross_entropy(out.flatten(0, 1), y.flatten(), reduction="sum"))
                n += y.numel()
                continue
            out = out[:, -1]
            if cols is not None:  # task-incremental: the task id picks the head's columns
                masked = torch.full_like(out, -math.inf)
                masked[:, cols] = out[:, cols]
                out = masked
            total += float((out.argmax(-1) == y[:, 0]).sum())
            n += len(y)
        scores.append(total / n / LN2 if task.kind == "lm" else 100.0 * total / n)
    return scores


class MatrixRecorder(Callback):
    """The accuracy matrix of a trainer run: every task scored at the start and when each
    task ends (rows logged to the run's ``metrics.jsonl`` as ``kind = "stream_eval"``)."""

    def __init__(self, task: Any, split: str, ctx: MethodContext, once: bool) -> None:
        self.task, self.split, self.ctx, self.once = task, split, ctx, once
        self.untrained: list[float] = []
        self.rows: list[list[float]] = []
        self.params: list[int] = []
        self.cells: list[int] = []

    def _row(self, trainer: Trainer) -> list[float]:
        trainer.net.eval()
        row = score_tasks(trainer.net, self.task, self.split)
        trainer.net.train()
        return row

    def on_train_start(self, trainer: Trainer) -> None:
        self.untrained = self._row(trainer)

    def on_step_end(self, trainer: Trainer, step: int, result: Any) -> None:
        t = boundary(step, self.ctx)
        if t is not None and not self.once:
            self._record(trainer, t)

    def on_train_end(self, trainer: Trainer, summary: dict[str, Any]) -> None:
        self._record(trainer, self.task.n_tasks - 1)

    def _record(self, trainer: Trainer, t: int) -> None:
        self.rows.append(self._row(trainer))
        self.params.append(trainer.net.n_params())
        self.cells.append(int(trainer.net.tissue.num_nodes))
        if trainer.run is not None:
            record = {"kind": "stream_eval", "step": trainer.step, "after_task": t}
            trainer.run.log_metrics({**record, "scores": self.rows[-1]})
