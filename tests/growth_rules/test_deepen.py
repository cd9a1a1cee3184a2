"""The deepen rule: cells in series when the free energy stops falling, up to a depth."""

from __future__ import annotations

import re

import pytest
import torch
from conftest import K, view

from morpho.config import RunConfig
from morpho.growth.rule import RULES
from morpho.growth_rules.deepen import Deepen
from morpho.tissue import OUTPUT, seed_tissue


def falling(n: int, rate: float) -> torch.Tensor:
    """(n, K) F EMAs falling by ``rate`` (relative) per check."""
    return torch.full((n, K), 1.0) * torch.tensor([(1 - rate) ** k for k in range(K)])


def test_deepen_waits_while_the_free_energy_falls_then_inserts_after_the_hottest_feeder():
    t = seed_tissue((1, 1, 1))
    assert Deepen(depth=5, plateau=0.02).propose(view(t, fe=falling(3, 0.05))) == []
    fe = falling(3, 0.001)
    fe[1] *= 2.0  # the hidden cell is hottest
    (event,) = Deepen(depth=5, plateau=0.02).propose(view(t, fe=fe))
    assert event.kind == "insert" and event.cells == (int(t.cell_id[1]),)
    assert "fell" in event.reason


def test_deepen_never_inserts_after_an_output_and_stops_at_its_depth():
    t = seed_tissue((1, 1, 1))
    plateau = falling(3, 0.0)
    events = Deepen(depth=6, per_round=5).propose(view(t, fe=plateau))
    assert len(events) == 2  # input and hidden feed a cell; the output feeds none
    assert all(t.role[int((t.cell_id == e.cells[0]).nonzero())] != OUTPUT for e in events)
    assert Deepen(depth=3).propose(view(t, fe=plateau)) == []  # already three levels
    assert len(Deepen(depth=4, per_round=5).propose(view(t, fe=plateau))) == 1  # room for one


def test_deepen_by_a_deadline_step_even_while_falling():
    t = seed_tissue((1, 1))
    v = view(t, fe=falling(2, 0.2))  # the view is at step 100
    assert Deepen(by=101).propose(v) == [] and len(Deepen(by=100).propose(v)) == 1
    assert "by=100" in Deepen(by=100).propose(v)[0].reason


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [("depth", 1, ">= 2"), ("plateau", 1.5, "in [0, 1]"), ("per_round", 0, ">= 1")],
)
def test_deepen_parameters_are_checked_with_their_full_name(key, value, message):
    with pytest.raises(ValueError, match=re.escape(f"growth.deepen.{key} must be {message}")):
        RunConfig.preset("wide").merged({"growth": {"rules": ["deepen"], "deepen": {key: value}}})


def test_deepen_is_registered():
    assert RULES.get("deepen") is Deepen


def test_a_wide_run_deepens_early_and_logs_the_births(tmp_path):
    from morpho.checkpoint import load_network
    from morpho.grow import grow
    from morpho.rundir import read_jsonl

    cfg = RunConfig.preset("wide").merged(
        {
            "network": {"level_sizes": [1, 1], "d_cell": 8, "d_stream": 16},
            "train": {"steps": 24, "batch_size": 2, "seq_len": 16, "eval_every": 12},
            "growth": {
                "rules": ["deepen"],
                "start": 4,
                "interval": 4,
                "cooldown": 4,
                "deepen": {"by": 8},
            },
        }
    )
    grow(cfg, tmp_path / "run")
    births = [e for e in read_jsonl(tmp_path / "run" / "events.jsonl") if e.get("kind") == "insert"]
    assert [e["rule"] for e in births] == ["deepen", "deepen"] and births[0]["step"] <= 8
    net, _ = load_network(tmp_path / "run" / "checkpoints" / "final.pt")
    assert int(net.tissue.level.max()) + 1 == 4  # deepened to the rule's depth, no further
