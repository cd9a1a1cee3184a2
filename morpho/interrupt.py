"""Stop a run on SIGINT / SIGTERM with a checkpoint it can be resumed from.

    stop = StopOnSignal()
    with stop.installed():
        grow(cfg, out, callbacks=[stop])     # raises Interrupted after the checkpoint

The handler only records the signal; the trainer finishes the step it is in, and the
callback then writes ``checkpoints/step_<step>.pt`` (the same checkpoint
``checkpoint_every`` writes, so the resumed run logs the same lines as a run done in one
go) and raises :class:`Interrupted`. A second signal stops at once.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from morpho.trainer import Callback

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(Exception):
    """A run stopped by a signal; ``checkpoint`` is the file written (None if none was)."""

    def __init__(self, signum: int, step: int, checkpoint: str | None) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name} at step {step}")
        self.signum, self.step, self.checkpoint = signum, step, checkpoint


class StopOnSignal(Callback):
    """Trainer callback: after a SIGINT / SIGTERM, checkpoint at the end of the step, stop."""

    def __init__(self) -> None:
        self.signum: int | None = None

    @contextmanager
    def installed(self) -> Iterator[StopOnSignal]:
        """Handle the signals inside the block (the previous handlers come back after)."""
        old = {s: signal.signal(s, self._handle) for s in SIGNALS}
        try:
            yield self
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt  # a second signal: stop now, without a checkpoint
        self.signum = signum

    def on_step_end(self, trainer: Any, step: int, loss: Any) -> None:
        # an eval step checkpoints after its evaluation (on_eval); the last step finishes
        if self.signum is not None and step % trainer.cfg.eval_every and step < trainer.cfg.steps:
            self._stop(trainer)

    def on_eval(self, trainer: Any, step: int, record: dict[str, Any]) -> None:
        if self.signum is not None:
            self._stop(trainer)

    def _stop(self, trainer: Any) -> None:
        assert self.signum is not None
        path = trainer.checkpoint() if trainer.run is not None and trainer.growing else None
        raise Interrupted(self.signum, trainer.step, path)
