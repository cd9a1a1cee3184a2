"""The task-change rule: a tissue-wide jump of surprise makes the most surprised cell of each
level bud a silent daughter (through the asymmetric split, function preserved); steady or
falling surprise, or too short a history, proposes nothing; what it sees is never mutated."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import K, make_optimizer, tiny_net, tokens, train, view

from morpho.apply import apply_edit
from morpho.growth.dispatch import edit_for
from morpho.growth.rule import RULES, build_rule
from morpho.growth_rules.task_change import TaskChange


def _jumped(v, rows_rise: dict[int, float], base: float = 0.5, factor: float = 3.0):
    s = v.cell_history["surprise_ema"]
    s[:] = base
    s[:, -1] = base * factor
    for r, f in rows_rise.items():
        s[r, -1] = base * f
    return v


def test_a_tissue_wide_jump_buds_the_most_surprised_cell_of_each_level() -> None:
    v = view()
    t = v.tissue
    top = {int((t.level == lv).nonzero()[0, 0]): 6.0 for lv in t.level.unique().tolist()}
    v = _jumped(v, top)
    before = {k: x.clone() for k, x in v.cell_history.items()}
    events = TaskChange(window=K - 1).propose(v)
    assert sorted(e.cells[0] for e in events) == sorted(int(t.cell_id[r]) for r in top)
    assert {e.kind for e in events} == {"split"} and all(
        e.options == {"share": 1.0} for e in events
    )
    assert all(e.score > 2.0 for e in events)
    assert all(torch.equal(before[k], v.cell_history[k]) for k in before)  # never mutated


@pytest.mark.parametrize(
    "last, window",
    [
        (1.2, 3),  # a rise of 1.2× is below the ratio 1.25
        (0.2, 3),  # falling surprise: learning, not a new task
        (3.0, K),  # a window as long as the history: too early to judge
    ],
)
def test_steady_falling_or_too_short_a_history_proposes_nothing(last: float, window: int) -> None:
    v = _jumped(view(), {}, factor=last)
    assert TaskChange(window=window).propose(v) == []


def test_cells_born_inside_the_window_are_not_judged() -> None:
    v = _jumped(view(), {})
    v.cell_history["surprise_ema"][:, 0] = math.nan  # every cell too young for the window
    assert TaskChange(window=K - 1).propose(v) == []


def test_the_budding_split_preserves_the_function_and_starts_daughter_b_silent() -> None:
    net = tiny_net()
    opt = make_optimizer("adamw", net)
    train(net, opt, 2)
    v = _jumped(view(tissue=net.tissue.cpu()), {})
    events = TaskChange(window=K - 1).propose(v)
    assert events
    x = tokens(3, batch=2, seq_len=10)
    with torch.no_grad():
        before = net(x)
    edit = apply_edit(net, edit_for(net, events[0]), opt)
    assert edit.info["share"] == 1.0
    with torch.no_grad():
        torch.testing.assert_close(net(x), before, rtol=1e-5, atol=1e-5)
    b = edit.info["new_cells"][1]
    src = net.tissue.cell_id[net.tissue.edge_index[0]]
    assert bool((net.banks["strength"].detach()[src == b] == 0).all())


def test_task_change_loads_by_name_and_refuses_bad_parameters() -> None:
    assert RULES.get("task_change") is TaskChange
    assert build_rule("task_change", {"ratio": 3.0}) == TaskChange(ratio=3.0)
    with pytest.raises(ValueError, match=r"growth\.task_change\.ratio must be > 1; got 1\.0"):
        TaskChange(ratio=1.0)
    with pytest.raises(ValueError, match=r"growth\.task_change\.share must be in \[0, 1\]"):
        TaskChange(share=1.5)
