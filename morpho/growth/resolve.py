"""Conflict resolution of a growth round: proposals, budgets, cooldowns → accepted events.

    accepted = resolve(proposals, step, cooldown, max_events=3, attempt=try_event)

Pure bookkeeping, testable without a network or a trainer: :func:`resolve` orders the
proposals and enforces one event per cell per round, cooldowns and the count per round;
``attempt`` applies one event (or refuses it) and says which new cells it made.
:class:`Budget` decides from sizes alone whether an edit stays within the budgets.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from morpho.growth.rule import Event


def resolve(
    proposals: list[Event],
    step: int,
    cooldown: Mapping[int, int],
    max_events: int,
    attempt: Callable[[Event], dict[str, Any] | None],
) -> list[dict[str, Any]]:
    """Try proposals highest score first (stable among equals): at most one event per cell
    (new cells count as taken), none on a cell whose cooldown ends after ``step``, at most
    ``max_events``. ``attempt(event)`` returns the applied event's record (with
    ``new_cells``) or None when it was refused; returns the records in order."""
    taken: set[int] = set()
    records: list[dict[str, Any]] = []
    for ev in sorted(proposals, key=lambda e: -e.score):
        if len(records) >= max_events:
            break
        cells = set(ev.cells)
        if cells & taken or any(cooldown.get(c, -1) > step for c in cells):
            continue
        record = attempt(ev)
        if record is not None:
            taken |= cells | set(record["new_cells"])
            records.append(record)
    return records


def floor_with_new_level(floor: Tensor, level: int) -> Tensor:
    """Level floors after a level was inserted at ``level``: the levels above move up one,
    with their floors, and the new level has none."""
    return torch.cat([floor[:level], floor.new_zeros(1), floor[level:]])


@dataclass(frozen=True)
class Budget:
    """Limits on the tissue a round may leave: cells, parameters, level sizes.

    Attributes:
        max_cells: no birth beyond this many cells.
        min_cells: no death below this many cells.
        max_params: no growth beyond this many parameters (0: no limit).
        level_floor: (levels,) no death shrinks a level below this (empty: no floor).
    """

    max_cells: int
    min_cells: int
    max_params: int = 0
    level_floor: Tensor = torch.zeros(0, dtype=torch.long)

    def allows(
        self, n_before: int, n_after: int, levels_after: Tensor, params: tuple[int, int]
    ) -> bool:
        """Would an edit from ``n_before`` to ``n_after`` cells (levels ``levels_after``
        (N',), parameters ``params = (before, after)``) stay within the budget? Deaths
        only make room for births: they never go below ``min_cells`` or a level floor."""
        if n_after > n_before and n_after > self.max_cells:
            return False
        if n_after < n_before and n_after < self.min_cells:
            return False
        floor = self.level_floor
        if n_after < n_before and floor.numel():
            sizes = torch.bincount(levels_after, minlength=floor.numel())[: floor.numel()]
            if bool((sizes < floor).any()):
                return False
        before, after = params
        return not (self.max_params and after > before and after > self.max_params)
