"""What the training loop hands its callbacks, and the loop's own counters.

    class Watch(Callback):
        def wants_capture(self, trainer, step): return step % 100 == 99
        def on_step_end(self, trainer, step, result): ...   # result.output.captured

Trainer events (at most these six; ``tests/engine/test_trainer_events.py`` proves each
fires): ``on_train_start``, ``wants_capture`` (asked of every callback before each step),
``on_step_end`` (with the :class:`StepResult`), ``on_eval``, ``on_edit``, ``on_train_end``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from torch import Tensor

from morpho.edits import Edit
from morpho.output import Output

if TYPE_CHECKING:
    from morpho.trainer import Trainer


@dataclass(frozen=True)
class StepResult:
    """What one training step computed; ``on_step_end`` receives it.

    Attributes:
        ce: () detached cross-entropy of the batch.
        output: the forward's record (None for a model without by-products).
        batch: ``(x, y)`` on the device, (B, T) long each.
        report: the record the monitors report: a term's own forward in the step (the
            Lyapunov probe), else ``output``.
    """

    ce: Tensor
    output: Output | None
    batch: tuple[Tensor, Tensor]
    report: Output | None = None


@dataclass
class TrainerState:
    """The trainer's counters: checkpointed and restored as one."""

    step: int = 0  # optimizer steps done
    best_val_bpc: float = math.inf
    last_eval: dict[str, Any] = field(default_factory=dict)  # the latest eval record
    train_time: float = 0.0  # seconds spent in training steps (wall clock)
    tokens_seen: int = 0
    train_flops: float = 0.0  # cumulative forward + backward FLOPs
    n_edits: int = 0
    flops_per_token: float = 0.0  # forward FLOPs per token, refreshed on logs and edits
    ponder_passes: int = 1  # ACT passes of the latest reported forward (FLOPs at an edit)


class Callback:
    """Template for trainer callbacks; override the events you need."""

    def on_train_start(self, trainer: Trainer) -> None: ...

    def wants_capture(self, trainer: Trainer, step: int) -> bool:
        """Should step ``step``'s forward keep its per-level tensors (``Output.captured``)?"""
        return False

    def on_step_end(self, trainer: Trainer, step: int, result: StepResult) -> None: ...

    def on_eval(self, trainer: Trainer, step: int, record: dict[str, Any]) -> None: ...

    def on_edit(self, trainer: Trainer, edit: Edit) -> None: ...

    def on_train_end(self, trainer: Trainer, summary: dict[str, Any]) -> None: ...
