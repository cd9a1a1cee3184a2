"""The scheduler: config parsing, budgets, cooldowns, one event per cell per round, logging,
checkpointable state, the edge-gradient capture, and a small grow run that grows."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from conftest import GROWTH_EVENT_KEYS, Host, assert_invariants, step_result, tiny_net, tokens

from morpho.config import RunConfig
from morpho.edits import connect_edit
from morpho.grow import grow
from morpho.growth.config import GrowthConfig
from morpho.growth.dispatch import params_after
from morpho.growth.probes import edge_gradients
from morpho.growth.rule import Event, GrowthView, Rule
from morpho.growth.scheduler import Scheduler
from morpho.network import Network
from morpho.rundir import RunDir, read_jsonl, snapshot_paths
from morpho.tissue import HIDDEN, check_tissue, load_snapshot


@dataclass(frozen=True)
class Scripted(Rule):
    """Proposes a fixed list of events (cell ids resolved at construction) → whatever it says."""

    events: tuple[Event, ...] = ()

    def propose(self, view: GrowthView) -> list[Event]:
        return list(self.events)


def hidden_ids(net: Network) -> list[int]:
    return net.tissue.cell_id[net.tissue.role == HIDDEN].tolist()


def split(cell: int, score: float) -> Event:
    return Event("split", (cell,), score, "scripted")


def round_with(net: Network, events: list[Event], step: int = 100, **cfg) -> tuple:
    """One check of a scheduler whose only rule proposes ``events``."""
    # deaths untested by knockout here (tests/engine/test_knockout.py holds that law)
    cfg = {"min_cells": 1, "keep_levels": False, "knockout_tolerance": float("inf"), **cfg}
    sch = Scheduler(GrowthConfig(rules=(), **cfg), rules={"scripted": Scripted(tuple(events))})
    host = Host(net, [sch])
    sch.on_train_start(host)
    res = step_result(net, tokens(0))
    sch.on_step_end(host, step - 1, res)
    return sch, host, sch.check(host, step, res)


# ------------------------------------------------------------------------- config
def test_config_parses_rule_tables_and_round_trips() -> None:
    cfg = GrowthConfig.from_dict(
        {"interval": 10, "rules": ["mitosis", "prune"], "mitosis": {"patience": 5}, "tau": 1}
    )
    assert cfg.interval == 10 and cfg.rules == ("mitosis", "prune") and cfg.tau == 1.0
    assert cfg.params == {"mitosis": {"patience": 5}}
    resolved = cfg.to_dict()
    assert resolved["mitosis"]["patience"] == 5 and "noise" in resolved["mitosis"]
    assert GrowthConfig.from_dict(resolved).to_dict() == resolved
    assert GrowthConfig.from_dict({}).rules == ("mitosis", "apoptosis", "dendrite", "prune")


@pytest.mark.parametrize(
    "table, message",
    [
        ({"intervall": 3}, "unknown config key growth.intervall"),
        ({"rules": ["mitosys"]}, "unknown growth rule 'mitosys'; expected one of: apoptosis"),
        ({"mitosis": {"patiense": 2}}, "unknown config key growth.mitosis.patiense"),
        ({"interval": "often"}, "growth.interval: expected int"),
        ({"interval": 0}, "growth.interval must be >= 1"),
    ],
)
def test_config_errors_name_the_key(table: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        GrowthConfig.from_dict(table)


def test_grow_rejects_a_bad_growth_table_before_writing(tmp_path) -> None:
    with pytest.raises(ValueError, match="bogus"):  # at config time, before any run
        grow(RunConfig().merged({"growth": {"bogus": 1}}), tmp_path / "run")
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------ conflict rules
def test_highest_score_first_and_one_event_per_cell() -> None:
    net = tiny_net()
    a, b = hidden_ids(net)[:2]
    grow_b = Event("connect", (int(net.tissue.cell_id[0]), b), 0.5, "scripted")
    events = [split(a, 1.0), Event("remove", (a,), 2.0, "scripted"), grow_b, split(b, 0.7)]
    _, _, records = round_with(net, events, max_events_per_round=10)
    assert [(r["kind"], r["cells"]) for r in records] == [("remove", [a]), ("split", [b])]
    assert_invariants(net)


def test_max_events_per_round() -> None:
    net = tiny_net()
    ids = hidden_ids(net)
    _, _, records = round_with(
        net, [split(c, float(i)) for i, c in enumerate(ids)], max_events_per_round=2, max_cells=100
    )
    assert [r["cells"][0] for r in records] == ids[::-1][:2]  # the two highest scores


def test_cell_and_parameter_budgets() -> None:
    net = tiny_net()
    n0 = net.tissue.num_nodes
    ids = hidden_ids(net)
    _, _, records = round_with(
        net, [split(c, 1.0) for c in ids], max_cells=n0 + 2, max_events_per_round=10
    )
    assert len(records) == 2 and net.tissue.num_nodes == n0 + 2
    net = tiny_net()
    p0 = net.n_params()
    _, _, records = round_with(
        net,
        [split(c, 1.0) for c in hidden_ids(net)],
        max_cells=100,
        max_params=p0 + 1,
        max_events_per_round=10,
    )
    assert records == [] and net.n_params() == p0
    shrink = [Event("remove", (hidden_ids(net)[0],), 1.0, "scripted")]  # shrinking is allowed
    _, _, records = round_with(net, shrink, max_params=1)
    assert len(records) == 1


def test_deaths_never_shrink_the_tissue_below_min_cells() -> None:
    net = tiny_net()
    n0 = net.tissue.num_nodes
    deaths = [Event("remove", (c,), 1.0, "scripted") for c in hidden_ids(net)]
    sch, _, records = round_with(net, deaths, min_cells=0, max_events_per_round=10)
    assert records == [] and sch.min_cells == n0  # 0: the size at the start of training
    _, _, records = round_with(net, deaths, min_cells=n0 - 2, max_events_per_round=10)
    assert len(records) == 2 and net.tissue.num_nodes == n0 - 2


def test_deaths_never_shrink_a_level_below_its_starting_size() -> None:
    net = tiny_net()
    t = net.tissue
    level1 = t.cell_id[t.level == 1].tolist()
    births = [split(level1[0], 1.0)]
    sch, host, _ = round_with(net, births, keep_levels=True, max_cells=100)
    level2 = net.tissue.cell_id[net.tissue.level == 2].tolist()
    deaths = [Event("remove", (c,), 1.0, "scripted") for c in level2]  # level 2 never grew
    sch.rules = {"scripted": Scripted(tuple(deaths))}
    res = step_result(net, tokens(1))
    assert sch.check(host, 200, res) == []
    grown = net.tissue.cell_id[net.tissue.level == 1].tolist()
    sch.rules = {"scripted": Scripted(tuple(Event("remove", (c,), 1.0, "s") for c in grown))}
    res = step_result(net, tokens(2))
    records = sch.check(host, 300, res)  # level 1 grew by one: one death makes room again
    assert len(records) == 1 and int((net.tissue.level == 1).sum()) == len(level1)


def test_no_rounds_after_the_until_fraction_of_training() -> None:
    net = tiny_net()
    sch = Scheduler(
        GrowthConfig(rules=(), interval=10, start=10, until=0.5, max_cells=100),
        rules={"scripted": Scripted((split(hidden_ids(net)[0], 1.0),))},
    )
    host = Host(net, [sch])
    host.cfg = host.cfg.__class__(steps=100)
    sch.on_train_start(host)
    for step in range(1, 101):
        sch.on_step_end(host, step, step_result(net, tokens(step)))
    assert sch.checks == 5  # steps 10 … 50
    assert sch.counts["split"] == 1  # the daughters' id differs: the script's cell is gone


def test_params_after_predicts_the_parameter_count() -> None:
    net = tiny_net()
    edit = connect_edit(net, int(net.tissue.cell_id[0]), hidden_ids(net)[-1])
    expected = params_after(net, edit)
    Host(net).apply_edit(edit)
    assert net.n_params() == expected


def test_cooldown_keeps_a_cell_out_of_events_until_it_ends() -> None:
    net = tiny_net()
    cell = hidden_ids(net)[0]
    sch, host, first = round_with(net, [split(cell, 1.0)], cooldown=50, max_cells=100)
    daughters = first[0]["new_cells"]
    sch.rules = {"scripted": Scripted((split(daughters[0], 1.0),))}
    res = step_result(net, tokens(1))
    assert sch.check(host, 125, res) == []  # within 50 steps of the split
    res = step_result(net, tokens(2))
    later = sch.check(host, 150, res)
    assert [r["cells"] for r in later] == [[daughters[0]]]


def test_refused_edits_are_skipped_not_fatal() -> None:
    net = tiny_net()
    a = int(net.tissue.cell_id[0])
    b = hidden_ids(net)[0]  # a → b exists in the dense seed: connect_edit refuses
    _, _, records = round_with(
        net,
        [Event("connect", (a, b), 9.0, "scripted"), split(hidden_ids(net)[1], 1.0)],
        max_cells=100,
    )
    assert [r["kind"] for r in records] == ["split"]


# ------------------------------------------------------------------------ logging
def test_events_and_snapshots_are_written(tmp_path) -> None:
    net = tiny_net()
    sch = Scheduler(
        GrowthConfig(rules=(), max_cells=100),
        rules={"scripted": Scripted((split(hidden_ids(net)[0], 1.5),))},
    )
    host = Host(net, [sch])
    host.run = RunDir(tmp_path / "run")
    host.run.create("")
    sch.on_train_start(host)
    res = step_result(net, tokens(0))
    sch.on_step_end(host, 99, res)
    sch.check(host, 100, res)
    (event,) = read_jsonl(tmp_path / "run" / "events.jsonl")
    assert GROWTH_EVENT_KEYS <= set(event), GROWTH_EVENT_KEYS - set(event)
    assert event["step"] == 100 and event["kind"] == "split" and event["score"] == 1.5
    (snap,) = snapshot_paths(tmp_path / "run")
    tissue, meta = load_snapshot(snap)
    check_tissue(tissue)
    assert snap.name == event["snapshot"] and tissue.num_nodes == net.tissue.num_nodes
    assert meta["events"] == ["split"]


def test_state_dict_is_plain_and_round_trips() -> None:
    net = tiny_net()
    sch, host, _ = round_with(net, [split(hidden_ids(net)[0], 1.0)], max_cells=100)
    res = step_result(net, tokens(1))
    sch.check(host, 125, res)
    state = sch.state_dict()
    for key, value in state.items():
        assert isinstance(value, (torch.Tensor, int, dict)), key
    other = Scheduler(GrowthConfig(rules=()))
    other.load_state_dict(state)
    again = other.state_dict()
    assert state.keys() == again.keys()
    for key, value in state.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value.nan_to_num(-1), again[key].nan_to_num(-1)), key
        else:
            assert value == again[key], key
    assert other.cooldown == sch.cooldown and other.stats.cells == sch.stats.cells


# ------------------------------------------------------------------ edge gradients
def test_captured_edge_gradient_equals_the_gradient_of_a_zero_strength_edge() -> None:
    net = tiny_net()
    x = tokens(3, seq_len=9)
    out = net.run(x[:, :-1], capture=True)
    torch.nn.functional.cross_entropy(out.logits.flatten(0, 1), x[:, 1:].flatten()).backward()
    grad = edge_gradients(out.captured, len(net.plan))
    a, b = 0, net.tissue.num_nodes - 1  # input → output: not a seed edge
    grown = tiny_net()
    Host(grown).apply_edit(
        connect_edit(grown, int(net.tissue.cell_id[a]), int(net.tissue.cell_id[b]))
    )
    logits = grown(x[:, :-1])
    torch.nn.functional.cross_entropy(logits.flatten(0, 1), x[:, 1:].flatten()).backward()
    assert grad[a, b] == pytest.approx(abs(float(grown.banks["strength"].grad[-1])), rel=1e-4)
    src, dst = net.tissue.edge_index  # existing edges: their own strength gradients
    expect = grown.banks["strength"].grad[:-1].abs()
    assert torch.allclose(grad[src, dst], expect, rtol=1e-4, atol=1e-9)


def test_capture_is_off_by_default_and_keeps_only_outputs_without_grad() -> None:
    net = tiny_net()
    assert net.run(tokens(0)).captured == ()
    with torch.no_grad():
        (cap,) = net.run(tokens(0), capture=True).captured
    assert cap.inputs == [] and len(cap.outputs) == len(net.plan)
    assert edge_gradients((cap,), len(net.plan)) is None  # no gradients to pair outputs with
    assert not {"stats", "aux_loss", "captured", "capture", "ponder"} & set(vars(net))


# ------------------------------------------------------------------ grow end to end
TINY_RUN = {
    "network": {"d_cell": 8, "level_sizes": [2, 3, 3, 2], "n_heads": 2, "mlp_ratio": 1},
    "train": {"steps": 60, "batch_size": 4, "seq_len": 16, "eval_every": 30, "eval_batches": 2},
    "growth": {"start": 10, "interval": 10, "mitosis": {"patience": 2}},
}


def test_grow_runs_the_scheduler_and_records_the_resolved_growth_table(tmp_path) -> None:
    cfg = RunConfig().merged(TINY_RUN)
    summary = grow(cfg, tmp_path / "run")
    events = read_jsonl(tmp_path / "run" / "events.jsonl")
    assert summary["growth_events"] == {
        k: sum(e["kind"] == k for e in events) for k in {e["kind"] for e in events}
    }
    assert "[growth.mitosis]" in (tmp_path / "run" / "config.toml").read_text()
    tissue, _ = load_snapshot(snapshot_paths(tmp_path / "run")[-1])
    check_tissue(tissue)
    off = grow(cfg.merged({"growth": {"enabled": False}}), tmp_path / "off")
    assert off["edits"] == 0 and read_jsonl(tmp_path / "off" / "events.jsonl") == []


@pytest.mark.slow
def test_small_lang_run_divides_dies_and_grows_edges(tmp_path) -> None:
    """The reference check: ``morpho grow --task lang --preset small --seed 0``."""
    summary = grow(RunConfig.preset("small").merged({"train": {"seed": 0}}), tmp_path / "run")
    kinds = {e["kind"] for e in read_jsonl(tmp_path / "run" / "events.jsonl")}
    assert {"split", "remove", "connect"} <= kinds
    for path in snapshot_paths(tmp_path / "run"):
        check_tissue(load_snapshot(path)[0])
    assert summary["gate_mean"] < 0.5
