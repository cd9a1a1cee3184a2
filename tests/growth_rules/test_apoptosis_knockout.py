"""Apoptosis ranked by knockout: the shut cells die cheapest loss rise first, the probe the
rule reads agrees with the scheduler's knockout test, and it runs (and is charged) only when
the rule asks for it."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import Host, make_optimizer, probed_step, tiny_net, tokens, train, view

from morpho.flops import FlopCounter
from morpho.growth.config import GrowthConfig
from morpho.growth.probes import knockout_all, knockout_dloss
from morpho.growth.scheduler import Scheduler
from morpho.growth_rules.apoptosis import Apoptosis
from morpho.tissue import HIDDEN


def test_the_cheapest_knockout_is_proposed_first_whatever_the_gates() -> None:
    v = view()
    t = v.tissue
    hidden = (t.role == HIDDEN).nonzero().flatten()
    knock = torch.full((t.num_nodes,), float("nan"))
    knock[hidden] = torch.linspace(0.5, 0.0, len(hidden))  # the last hidden cell costs least
    gate = torch.full(v.cell_history["gate_ema"].shape, 0.1)
    gate[hidden[0]] = 0.0  # the most silent cell is the most expensive to lose
    v = dataclasses.replace(v, knockout=knock, cell_history={**v.cell_history, "gate_ema": gate})
    events = Apoptosis(epsilon=1.0, patience=1, order="knockout").propose(v)
    assert events[0].cells == (int(t.cell_id[hidden[-1]]),)
    assert [e.score for e in events] == sorted((e.score for e in events), reverse=True)
    assert events[0].stats["knockout_dloss"] == pytest.approx(0.0)
    by_gate = Apoptosis(epsilon=1.0, patience=1).propose(v)
    assert by_gate[0].cells == (int(t.cell_id[hidden[0]]),)  # the default order is the gate's
    assert Apoptosis(epsilon=1.0, patience=1, order="knockout").propose(view()) == []  # no probe


def test_bad_order_is_refused() -> None:
    with pytest.raises(ValueError, match="growth.apoptosis.order must be one of gate, knockout"):
        Apoptosis(order="size")


def test_knockout_probe_is_the_knockout_test_of_every_hidden_cell() -> None:
    torch.manual_seed(0)
    net = tiny_net()
    train(net, make_optimizer("adamw", net), 3)
    x = tokens(1, batch=4, seq_len=10)
    batch = (x[:, :-1], x[:, 1:])
    probe = knockout_all(net, batch)
    hidden = net.tissue.role == HIDDEN
    assert torch.isnan(probe[~hidden]).all()
    for row in hidden.nonzero().flatten().tolist():
        assert float(probe[row]) == pytest.approx(knockout_dloss(net, row, batch), abs=1e-6)


def _round(net, counter, order: str, min_cells: int) -> tuple[list[dict], float]:
    """One scheduler check with apoptosis in ``order``; its records and the FLOPs it spent."""
    table = {"order": order, "epsilon": 1.0, "patience": 1}
    over = {"min_cells": min_cells, "keep_levels": False, "max_events_per_round": 1}
    sch = Scheduler(GrowthConfig.from_dict({"rules": ["apoptosis"], "apoptosis": table, **over}))
    host = Host(net, [sch])
    sch.on_train_start(host)
    res = probed_step(net)
    sch.on_step_end(host, 99, res)
    before = counter.dense
    records = sch.check(host, 100, res)
    return records, counter.dense - before


def test_the_scheduler_runs_the_probe_only_for_a_rule_that_asks_and_charges_it() -> None:
    torch.manual_seed(0)
    nets = {order: tiny_net() for order in ("gate", "knockout")}
    spent, records = {}, {}
    for order, net in nets.items():
        records[order], spent[order] = _round(net, FlopCounter().attach(net), order, 1)
    assert spent["knockout"] > spent["gate"]
    (death,) = records["knockout"]
    assert "knockout costs" in death["reason"] and "knockout_dloss" in death["stats"]


def test_no_knockout_probe_is_run_at_the_cell_floor() -> None:
    torch.manual_seed(0)
    net = tiny_net()
    counter = FlopCounter().attach(net)
    floor = net.tissue.num_nodes
    gate_records, gate_spent = _round(net, counter, "gate", floor)
    knock_records, knock_spent = _round(net, counter, "knockout", floor)
    assert gate_records == knock_records == []  # no death may happen at the floor
    assert knock_spent == gate_spent  # so the probe's FLOPs are not spent
