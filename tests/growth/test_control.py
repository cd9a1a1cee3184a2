"""Blind growth controls: a replay makes the reference trace's events — as many, of the
same kinds — at the recorded steps (random) or evenly spaced ones (schedule), on drawn
cells, and never reads a statistic to decide."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import torch
from conftest import Host, assert_invariants, step_result, tiny_net, tokens

from morpho.config import RunConfig
from morpho.grow import grow
from morpho.growth.config import GrowthConfig
from morpho.growth.control import plan, read_trace, schedule_steps
from morpho.growth.scheduler import Scheduler
from morpho.growth.stats import CellStats
from morpho.rundir import read_jsonl
from morpho.trainer import TrainConfig

STEPS = 60
TRACE = [  # a reference run's events.jsonl (what any rule recorded), several kinds
    {"step": 10, "kind": "split", "rule": "mitosis", "options": {"noise": 0.01}},
    {"step": 10, "kind": "connect", "rule": "dendrite"},
    {"step": 10, "kind": "remove", "rule": "apoptosis", "options": {}},
    {"step": 20, "kind": "insert", "rule": "mitosis", "options": {}},
    {"step": 20, "kind": "disconnect", "rule": "prune", "options": {}},
]


def write_trace(path: Path, lines: list[dict]) -> str:
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return str(path)


def replay(control: str, trace: str, poison: bool = False, monkeypatch=None) -> list[tuple]:
    """Drive a control scheduler over a tiny network for ``STEPS`` steps; returns its
    events as (step, kind, cells)."""
    cfg = GrowthConfig(
        control=control, control_from=trace, start=10, interval=10, until=0.8, min_cells=1,
        keep_levels=False, max_events_per_round=10,
    )  # fmt: skip
    torch.manual_seed(0)
    net = tiny_net()
    sch = Scheduler(cfg)
    host = Host(net, [sch])
    host.cfg = TrainConfig(steps=STEPS)
    if poison:  # every statistic NaN, and no view may be built: nothing may be read
        update = CellStats.update

        def nan_update(self, net, forward, weights, extra=None):
            update(self, net, {k: torch.full_like(v, float("nan")) for k, v in forward.items()},
                   weights, extra)  # fmt: skip

        def no_view(*args, **kwargs):
            raise AssertionError("a control built a growth view")

        monkeypatch.setattr(CellStats, "update", nan_update)
        monkeypatch.setattr(CellStats, "view", no_view)
    sch.on_train_start(host)
    events = []
    for step in range(STEPS):
        res = step_result(host.net, tokens(step))
        sch.stats.update(host.net, res.output.stats, sch.weights)  # as on_step_end folds them
        if sch._due(step, STEPS):
            events += [(r["step"], r["kind"], r["cells"]) for r in sch.check(host, step, res)]
    assert_invariants(host.net)
    return events


@pytest.fixture
def trace(tmp_path: Path) -> str:
    return write_trace(tmp_path / "events.jsonl", TRACE)


def test_random_makes_every_recorded_event_at_its_recorded_step(trace: str) -> None:
    events = replay("random", trace)
    assert [(s, k) for s, k, _ in events] == [(e["step"], e["kind"]) for e in TRACE]


def test_schedule_makes_the_same_events_at_evenly_spaced_steps(trace: str) -> None:
    events = replay("schedule", trace)
    end = int(0.8 * STEPS)
    assert [k for _, k, _ in events] == [e["kind"] for e in TRACE]
    assert [s for s, _, _ in events] == schedule_steps(len(TRACE), 10, end, 10)
    assert [s for s, _, _ in events] == [10, 20, 20, 30, 40]  # 16, 22, 29, 35, 41 on the grid


@pytest.mark.parametrize("control", ["random", "schedule"])
def test_a_control_reads_no_signal(trace: str, control: str, monkeypatch) -> None:
    clean = replay(control, trace)
    assert replay(control, trace, poison=True, monkeypatch=monkeypatch) == clean


@pytest.mark.parametrize("n, start, end", [(1, 50, 210), (3, 0, 100), (7, 10, 48), (0, 5, 9)])
def test_schedule_steps_are_n_grid_steps_spread_over_the_window(n, start, end) -> None:
    steps = schedule_steps(n, start, end, 5)
    assert len(steps) == n and steps == sorted(steps)
    assert all(start <= s <= end and (s % 5 == 0 or s == start) for s in steps)
    ideal = [start + (i + 1) * (end - start) / (n + 1) for i in range(n)]
    assert all(0 <= x - s < 5 + 1e-9 for s, x in zip(steps, ideal, strict=True))


def test_a_widening_replays_with_its_recorded_width(tmp_path: Path) -> None:
    old = {"step": 100, "kind": "widen", "rule": "widen", "new_width": 40, "old_width": 20}
    (ev,) = read_trace(write_trace(tmp_path / "e.jsonl", [old]))
    assert ev.options == {"d_cell": 40}  # a trace from before lines carried options
    assert plan((ev,), "schedule", 50, 210, 25) == {125: [ev]}
    assert plan((ev,), "random", 50, 210, 25) == {100: [ev]}


@pytest.mark.parametrize(
    "table, message",
    [
        ({"control": "shuffle"}, "growth.control must be one of none, random, schedule"),
        ({"control": "random"}, "growth.control_from must name a reference events.jsonl"),
        ({"control_from": "x.jsonl"}, "growth.control_from must name a reference events.jsonl"),
        ({"control": "random", "control_from": "nowhere.jsonl"}, "is not a file"),
    ],
)
def test_bad_control_tables_are_refused_before_a_run_exists(tmp_path, table, message) -> None:
    with pytest.raises(ValueError, match=message):
        grow(RunConfig().merged({"growth": table}), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_trace_line_that_is_no_growth_event_is_named(tmp_path: Path) -> None:
    path = write_trace(tmp_path / "e.jsonl", [TRACE[0], {"step": 3, "kind": "explode"}])
    with pytest.raises(ValueError, match="line 2 .* kind 'explode'; expected one of: split"):
        GrowthConfig(control="random", control_from=path)


def test_grow_replays_a_reference_run_from_its_config(tmp_path: Path) -> None:
    run = {
        "network": {"d_cell": 8, "level_sizes": [2, 3, 3, 2], "n_heads": 2, "mlp_ratio": 1},
        "train": {"steps": 30, "batch_size": 2, "seq_len": 8, "eval_every": 30},
        "growth": {"start": 10, "interval": 10, "keep_levels": False, "min_cells": 1},
    }
    trace = write_trace(tmp_path / "ref.jsonl", TRACE)
    cfg = RunConfig().merged(run).merged({"growth": {"control": "schedule", "control_from": trace}})
    summary = grow(cfg, tmp_path / "run")
    events = read_jsonl(tmp_path / "run" / "events.jsonl")
    assert summary["control_dropped"] == 0
    assert Counter(e["kind"] for e in events) == Counter(e["kind"] for e in TRACE)
    assert all(e["reason"].startswith("control replay") for e in events)
    assert {e["step"] for e in events} <= set(range(10, 25))
