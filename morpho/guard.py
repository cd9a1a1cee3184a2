"""The non-finite guard of the training loop: skip a bad step, log it, stop after a streak.

A step whose loss or gradient norm is not finite leaves parameters and optimizer state as
they were and logs a ``nonfinite`` event; after ``max_nonfinite`` in a row the run stops
with :class:`NonFiniteError`. Two ways to check: on the host (one sync per step), or, with
``train.sync_free``, on the device (the fused AdamW kernel reads ``found_inf`` and skips;
skips are counted on the device and read at the next log step).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor


class NonFiniteError(RuntimeError):
    """Raised when ``max_nonfinite`` consecutive steps had a non-finite loss or gradient."""


class NonFiniteGuard:
    """Counts skipped steps and stops the run on a streak; see the module docstring.

    Args:
        max_nonfinite: consecutive bad steps before :class:`NonFiniteError`.
        log_event: appends an event to the run's ``events.jsonl`` (None: no run directory).
        last_good: saves the last good state and returns where (None: nothing saved).
    """

    def __init__(
        self,
        max_nonfinite: int,
        log_event: Callable[[dict[str, Any]], None] | None,
        last_good: Callable[[], str | None],
    ) -> None:
        self.max_nonfinite = max_nonfinite
        self.log_event = log_event
        self.last_good = last_good
        self.streak = 0
        self._streak: Tensor | None = None  # sync-free: device counters
        self._count: Tensor | None = None
        self._logged = 0

    def skip(
        self, optimizer: torch.optim.Optimizer, loss: float, grad_norm: float, step: int
    ) -> None:
        """Leave parameters and optimizer state as they were; log; stop after a streak."""
        optimizer.zero_grad(set_to_none=True)
        self.streak += 1
        if self.log_event is not None:
            self.log_event(
                {
                    "step": step,
                    "kind": "nonfinite",
                    "loss": str(loss),
                    "grad_norm": str(grad_norm),
                    "action": "skipped step",
                    "streak": self.streak,
                }
            )
        if self.streak >= self.max_nonfinite:
            self.stop(self.streak, f"last at step {step}, loss {loss}, grad norm {grad_norm}")

    def device_step(self, optimizer: torch.optim.Optimizer, check: Tensor) -> None:
        """The guard without a host sync (``train.sync_free``).

        The fused AdamW kernel reads ``found_inf`` on the device and, where it is 1, leaves
        parameters and state as they were (its step counters are taken back): the same skip
        as the host guard. Skips and the streak are counted on the device and read at the
        next log step (:meth:`check_device`).
        """
        found = (~torch.isfinite(check)).float().reshape(())
        optimizer.found_inf = found  # type: ignore[attr-defined]
        optimizer.step()
        streak = self._streak if self._streak is not None else torch.zeros_like(found)
        count = self._count if self._count is not None else torch.zeros_like(found)
        self._streak = (streak + 1) * found  # consecutive skips, 0 after a good step
        self._count = count + found

    def check_device(self, step: int) -> None:
        """Log the steps the sync-free guard skipped since the last check; stop on a streak."""
        if self._streak is None or self._count is None:
            return
        count, streak = int(self._count), int(self._streak)  # the sync, at a log step
        new, self._logged = count - self._logged, count
        self.streak = streak
        if new and self.log_event is not None:
            self.log_event(
                {
                    "step": step,
                    "kind": "nonfinite",
                    "skipped_steps": new,
                    "action": "skipped on the device (sync-free guard)",
                    "streak": streak,
                }
            )
        if streak >= self.max_nonfinite:
            self.stop(streak, f"up to step {step}")

    def stop(self, streak: int, detail: str) -> None:
        """Save the last good state (where the trainer can) and raise."""
        saved = self.last_good()
        where = f"; last good state saved to {saved}" if saved else ""
        raise NonFiniteError(
            f"non-finite loss or gradient in {streak} consecutive steps ({detail}){where}"
        )
