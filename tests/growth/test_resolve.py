"""The conflict resolver and the budgets, as pure functions: no network, no trainer."""

from __future__ import annotations

import torch

from morpho.growth.resolve import Budget, floor_with_new_level, resolve
from morpho.growth.rule import Event


def ev(kind: str, cells: tuple[int, ...], score: float) -> Event:
    return Event(kind, cells, score, "test")


def accept_all(new: dict[tuple[int, ...], list[int]] | None = None):
    """An ``attempt`` that applies everything; ``new`` names the cells an event makes."""
    tried: list[Event] = []

    def attempt(e: Event) -> dict:
        tried.append(e)
        return {"cells": list(e.cells), "new_cells": (new or {}).get(e.cells, [])}

    return attempt, tried


def test_highest_score_first_one_event_per_cell() -> None:
    attempt, tried = accept_all()
    proposals = [ev("split", (1,), 1.0), ev("remove", (1,), 2.0), ev("connect", (0, 2), 0.5)]
    records = resolve(proposals, step=10, cooldown={}, max_events=10, attempt=attempt)
    assert [(r["cells"]) for r in records] == [[1], [0, 2]]
    assert [e.kind for e in tried] == ["remove", "connect"]  # the split of 1 never tried


def test_new_cells_are_taken_for_the_rest_of_the_round() -> None:
    attempt, tried = accept_all({(1,): [7, 8]})
    proposals = [ev("split", (1,), 3.0), ev("connect", (7, 2), 2.0), ev("split", (2,), 1.0)]
    records = resolve(proposals, 10, {}, 10, attempt)
    assert [r["cells"] for r in records] == [[1], [2]]


def test_cooldown_and_the_round_limit() -> None:
    attempt, _ = accept_all()
    proposals = [ev("split", (c,), float(c)) for c in range(5)]
    cooling = {4: 11, 3: 10}  # 4 still cooling at step 10; 3's cooldown ended
    records = resolve(proposals, 10, cooling, max_events=2, attempt=attempt)
    assert [r["cells"] for r in records] == [[3], [2]]


def test_a_refused_event_frees_its_cells_and_does_not_count() -> None:
    def attempt(e: Event):
        return None if e.kind == "remove" else {"new_cells": []}

    proposals = [ev("remove", (1,), 2.0), ev("split", (1,), 1.0), ev("split", (2,), 0.5)]
    records = resolve(proposals, 0, {}, max_events=2, attempt=attempt)
    assert len(records) == 2


def test_budget_cells_levels_and_parameters() -> None:
    levels = torch.tensor([0, 0, 1, 1, 1, 2])
    b = Budget(max_cells=6, min_cells=5, max_params=100, level_floor=torch.tensor([2, 3, 1]))
    assert b.allows(5, 6, levels, (50, 60))  # a birth up to the cell budget
    assert not b.allows(6, 7, torch.cat([levels, levels[-1:]]), (50, 60))  # beyond it
    assert not b.allows(6, 5, levels[1:], (50, 40))  # a level below its floor
    assert not b.allows(5, 4, levels[:4], (50, 40))  # below min_cells
    assert not b.allows(5, 6, levels, (90, 101))  # beyond the parameter budget
    assert b.allows(5, 6, levels, (120, 110))  # shrinking parameters is always allowed
    assert Budget(6, 0).allows(6, 5, levels[:5], (0, 0))  # no floor: deaths allowed


def test_an_inserted_level_gets_no_floor_and_lifts_the_ones_above() -> None:
    assert floor_with_new_level(torch.tensor([2, 4, 4, 2]), 2).tolist() == [2, 4, 0, 4, 2]
