"""Growth rules: each proposes the expected events on crafted statistics and nothing otherwise,
never mutates what it is shown, and rules load from the ``morpho.growth_rules`` entry points."""

from __future__ import annotations

import math
import sys
import textwrap

import pytest
import torch
from conftest import K, view
from typer.testing import CliRunner

from morpho.cli import app
from morpho.growth.rule import RULES, GrowthView, Rule, rule_law
from morpho.growth_rules.apoptosis import Apoptosis
from morpho.growth_rules.dendrite import Dendrite
from morpho.growth_rules.mitosis import Mitosis
from morpho.growth_rules.prune import Prune
from morpho.registry import Registry
from morpho.tissue import HIDDEN, seed_tissue


def hidden_rows(v: GrowthView) -> list[int]:
    return (v.tissue.role == HIDDEN).nonzero().flatten().tolist()


# ------------------------------------------------------------------------ mitosis
def test_mitosis_splits_the_cell_whose_energy_stays_high_and_rises() -> None:
    v = view()
    r = hidden_rows(v)[1]
    v.cell_history["fe_ema"][r] = torch.tensor([0.9, 0.9, 0.95, 1.0])
    events = Mitosis(patience=3).propose(v)
    assert [(e.kind, e.cells) for e in events] == [("split", (int(v.tissue.cell_id[r]),))]
    assert events[0].score > 1 and events[0].options == {"noise": Mitosis().noise}


@pytest.mark.parametrize(
    "history",
    [
        [0.5, 0.5, 0.95, 1.0],  # high for 2 checks only (patience 3)
        [0.9, 1.2, 1.1, 1.0],  # high but falling
        [math.nan, math.nan, 1.0, 1.1],  # too young to judge
    ],
)
def test_mitosis_waits_for_patience_and_a_plateau(history: list[float]) -> None:
    v = view()
    v.cell_history["fe_ema"][hidden_rows(v)[0]] = torch.tensor(history)
    assert Mitosis(patience=3).propose(v) == []


def test_mitosis_ignores_equal_cells_and_non_hidden_cells() -> None:
    assert Mitosis().propose(view()) == []  # a tissue of equal cells does not divide
    v = view()
    v.cell_history["fe_ema"][0] = torch.tensor([2.0, 2.0, 2.0, 2.0])  # an input cell
    assert Mitosis().propose(v) == []


# ---------------------------------------------------------------------- apoptosis
def test_apoptosis_removes_a_cell_whose_gate_stays_shut() -> None:
    v = view()
    r = hidden_rows(v)[2]
    v.cell_history["gate_ema"][r] = torch.tensor([0.01, 0.01, 0.02, 0.01])
    events = Apoptosis(patience=3, epsilon=0.05).propose(v)
    assert [(e.kind, e.cells) for e in events] == [("remove", (int(v.tissue.cell_id[r]),))]
    v.cell_history["gate_ema"][hidden_rows(v)[0]] = 0.0
    assert len(Apoptosis(patience=3, epsilon=0.05).propose(v)) == 2  # every shut cell
    assert 0 < events[0].score <= 1


def test_apoptosis_needs_patience_and_spares_inputs_and_outputs() -> None:
    v = view()
    v.cell_history["gate_ema"][hidden_rows(v)[0]] = torch.tensor([0.3, 0.3, 0.01, 0.01])
    v.cell_history["gate_ema"][0] = 0.0  # input cell
    v.cell_history["gate_ema"][-1] = 0.0  # output cell
    assert Apoptosis(patience=3, epsilon=0.05).propose(v) == []


def test_apoptosis_never_cuts_the_last_input_output_path() -> None:
    v = view(tissue=seed_tissue((1, 1, 1)))
    v.cell_history["gate_ema"][1] = 0.0  # the only hidden cell: the only path
    assert Apoptosis(patience=3, epsilon=0.05).propose(v) == []


# ----------------------------------------------------------------------- dendrite
def test_dendrite_grows_the_short_candidate_with_the_largest_gradient() -> None:
    t = seed_tissue((2, 3, 3, 2))
    n = t.num_nodes
    grad = torch.full((n, n), 1.0)  # every existing edge: median 1
    a, b = 0, 6  # input (level 0) → level-2 cell: not an edge yet, going up two levels
    grad[a, b] = 10.0
    events = Dendrite(max_distance=10.0, wiring_cost=0.1, threshold=2.0).propose(view(t, grad=grad))
    assert [(e.kind, e.cells) for e in events] == [("connect", (a, b))]
    dist = float((t.pos[a] - t.pos[b]).norm())
    assert events[0].score == pytest.approx(10.0 - 0.1 * dist)


def test_dendrite_respects_levels_distance_wiring_cost_and_existing_edges() -> None:
    t = seed_tissue((2, 3, 3, 2))
    n = t.num_nodes
    flat = torch.full((n, n), 1.0)
    assert Dendrite(max_distance=10.0).propose(view(t, grad=flat)) == []  # nothing stands out
    assert Dendrite().propose(view(t, grad=None)) == []  # no gradients captured
    down = flat.clone()
    down[6, 0] = 10.0  # level 2 → level 0: against the DAG
    down[0, 2] = 10.0  # already an edge (dense seed)
    assert Dendrite(max_distance=10.0).propose(view(t, grad=down)) == []
    far = flat.clone()
    far[0, 6] = 10.0
    assert Dendrite(max_distance=0.5).propose(view(t, grad=far)) == []  # too far
    assert Dendrite(max_distance=10.0, wiring_cost=100.0).propose(view(t, grad=far)) == []


# -------------------------------------------------------------------------- prune
def test_prune_drops_an_edge_that_stays_near_zero() -> None:
    v = view()
    j = 3
    v.edge_history[j] = torch.tensor([0.001, 0.002, 0.001, 0.0])
    events = Prune(patience=4, epsilon=0.02).propose(v)
    assert [(e.kind, e.edge) for e in events] == [("disconnect", int(v.tissue.edge_id[j]))]
    src, dst = v.tissue.edge_index[:, j].tolist()
    assert events[0].cells == (int(v.tissue.cell_id[src]), int(v.tissue.cell_id[dst]))


def test_prune_spares_young_edges_recovering_edges_and_a_cells_last_edge() -> None:
    v = view()
    v.edge_history[0] = torch.tensor([math.nan, math.nan, 0.0, 0.0])  # a new dendrite
    v.edge_history[1] = torch.tensor([0.0, 0.0, 0.0, 0.05])  # grew out of it
    assert Prune(patience=4).propose(v) == []
    chain = view(tissue=seed_tissue((1, 1, 1)))
    chain.edge_history[:] = 0.0  # every edge is some cell's last one
    assert Prune(patience=4).propose(chain) == []


# ------------------------------------------------------------------- purity, registry
PERMISSIVE = [
    Mitosis(patience=1),
    Apoptosis(patience=1, epsilon=1.0),
    Dendrite(threshold=-1e9),
    Prune(patience=1, epsilon=1.0),
]


@pytest.mark.parametrize("rule", PERMISSIVE)
def test_rules_never_mutate_what_they_see(rule: Rule) -> None:
    n = 10
    v = view(grad=torch.rand(n, n, generator=torch.Generator().manual_seed(0)))
    v.cell_history["fe_ema"][:] = torch.rand(n, K, generator=torch.Generator().manual_seed(1))
    before = {k: x.clone() for k, x in v.tissue.items() if torch.is_tensor(x)}
    hist = {k: x.clone() for k, x in v.cell_history.items()}
    edges, strength, grad = v.edge_history.clone(), v.strength.clone(), v.edge_gradient.clone()
    events = rule.propose(v)
    assert events, "the permissive rule should propose something"
    for k, x in before.items():
        assert torch.equal(x, v.tissue[k]), k
    assert all(torch.equal(hist[k], v.cell_history[k]) for k in hist)
    assert torch.equal(edges, v.edge_history) and torch.equal(strength, v.strength)
    assert torch.equal(grad, v.edge_gradient)
    with pytest.raises(AttributeError):
        events[0].score = 0.0  # type: ignore[misc]  # events are frozen


def test_builtin_rules_load_from_entry_points_with_their_laws() -> None:
    assert {"mitosis", "apoptosis", "dendrite", "prune"} <= set(RULES.names())
    assert RULES.get("mitosis") is Mitosis
    for name in ("mitosis", "apoptosis", "dendrite", "prune"):
        assert "→" in rule_law(RULES.get(name)) or "minus" in rule_law(RULES.get(name))
    out = CliRunner().invoke(app, ["rules"]).output
    for name in ("mitosis", "apoptosis", "dendrite", "prune"):
        assert name in out and rule_law(RULES.get(name)) in out


def test_a_third_party_rule_registered_by_entry_point_loads(tmp_path, monkeypatch) -> None:
    (tmp_path / "budding_rule.py").write_text(
        textwrap.dedent('''
        from dataclasses import dataclass
        from morpho.growth.rule import Rule

        @dataclass(frozen=True)
        class Budding(Rule):
            """Never anything → nothing."""
            def propose(self, view):
                return []
    ''')
    )
    dist = tmp_path / "budding_rule-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: budding-rule\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[morpho.growth_rules]\nbudding = budding_rule:Budding\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "budding_rule", raising=False)
    rules = Registry("growth rule", entry_point_group="morpho.growth_rules")  # as RULES, fresh
    assert "budding" in rules.names() and "mitosis" in rules.names()
    budding = rules.get("budding")
    assert issubclass(budding, Rule) and rule_law(budding) == "Never anything → nothing."
    assert budding().propose(view()) == []


def test_apoptosis_takes_the_most_silent_cells_first_up_to_its_cap() -> None:
    v = view()
    rows = hidden_rows(v)
    for r, g in zip(rows[:3], (0.03, 0.01, 0.02), strict=True):
        v.cell_history["gate_ema"][r] = g
    ids = v.tissue.cell_id
    one = Apoptosis(patience=3, epsilon=0.05, max_deaths=1).propose(v)
    assert [e.cells for e in one] == [(int(ids[rows[1]]),)]
    two = Apoptosis(patience=3, epsilon=0.05, max_deaths=2).propose(v)
    assert [e.cells for e in two] == [(int(ids[rows[1]]),), (int(ids[rows[2]]),)]


def test_mitosis_splits_the_hottest_cells_first_up_to_its_cap() -> None:
    v = view()
    rows = hidden_rows(v)
    v.cell_history["fe_ema"][rows[0]] = torch.tensor([1.0, 1.0, 1.0, 1.1])
    v.cell_history["fe_ema"][rows[1]] = torch.tensor([1.0, 1.0, 1.0, 1.2])
    ids = v.tissue.cell_id
    assert [e.cells for e in Mitosis(quantile=0.5).propose(v)] == [(int(ids[rows[1]]),)]
    both = Mitosis(quantile=0.5, max_splits=2).propose(v)
    assert [e.cells for e in both] == [(int(ids[rows[1]]),), (int(ids[rows[0]]),)]
