"""Rules whose edits carry tensors read from the signal (split_steepest's direction, GradMax's
write rows) record a blind edit of the same kind and size in ``events.jsonl``, and their
runs can be replayed by a control; an event with tensor options and no blind edit is a
clear error, not a half-written log line."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch
from conftest import tiny_net, tiny_run

from morpho.config import RunConfig
from morpho.grow import grow
from morpho.growth.dispatch import edit_for, replay_options
from morpho.growth.rule import Event
from morpho.rundir import read_jsonl
from morpho.tissue import HIDDEN

RULE_RUNS = {
    "split_steepest": {
        "network": {"cell_type": "wide"},
        "growth": {"rules": ["split_steepest"], "split_steepest": {"epsilon": 0.1}},
    },
    "gradmax": {
        "network": {"cell_type": "wide", "d_cell": 10, "n_heads": 1},
        "growth": {
            "rules": ["widen"],
            "widen": {
                "to": 20,
                "multiple": 10,
                "init": "gradmax",
                "tolerance": 10.0,
                "max_fraction": 1.0,
                "patience": 1,
            },
        },
    },
}


def _run(tmp_path: Path, name: str, extra: dict) -> tuple[dict, list[dict]]:
    cfg = RunConfig().merged(tiny_run(30)).merged(extra)
    summary = grow(cfg, tmp_path / name)
    return summary, read_jsonl(tmp_path / name / "events.jsonl")


@pytest.mark.parametrize("rule", sorted(RULE_RUNS))
def test_a_signal_rule_run_logs_a_blind_edit_a_control_replays(tmp_path: Path, rule) -> None:
    _, events = _run(tmp_path, "ref", RULE_RUNS[rule])
    assert events, f"{rule} made no event in the tiny run"
    expected = {"split_steepest": {"antithetic": True, "noise": 0.1}, "gradmax": {"d_cell": 20}}
    assert all(e["options"] == expected[rule] for e in events)
    trace = str(tmp_path / "ref" / "events.jsonl")
    summary, replayed = _run(
        tmp_path, "random", {**RULE_RUNS[rule], "growth": {
            **RULE_RUNS[rule]["growth"], "control": "random", "control_from": trace}},
    )  # fmt: skip
    assert summary["control_dropped"] == 0
    assert Counter(e["kind"] for e in replayed) == Counter(e["kind"] for e in events)
    assert [e["step"] for e in replayed] == [e["step"] for e in events]
    assert all(e["options"] == expected[rule] for e in replayed)


def test_the_blind_split_has_the_signal_splits_offset_size() -> None:
    """``antithetic`` at noise ε gives ``±δ`` with ``‖δ‖ ≈ ε‖θ‖`` over the copied rows: the
    size split_steepest's ``ε‖θ‖v`` has, in a random direction."""
    torch.manual_seed(0)
    net = tiny_net(cell_type="wide")
    row = int((net.tissue.role == HIDDEN).nonzero()[0])
    cell = int(net.tissue.cell_id[row])
    from morpho.edits import antithetic_offsets

    copied = antithetic_offsets(net, row, 1.0)  # noise 1: δ ~ rms(row) · N(0, 1) per bank
    theta = torch.cat([net.banks[k][row].detach().flatten() for k in copied])
    sizes = []
    for seed in range(200):
        d = antithetic_offsets(net, row, 0.1, torch.Generator().manual_seed(seed))
        sizes.append(float(torch.cat([v.flatten() for v in d.values()]).norm()))
    mean = sum(sizes) / len(sizes)
    assert mean == pytest.approx(0.1 * float(theta.norm()), rel=0.05)
    ev = Event("split", (cell,), 1.0, "", "x", replay={"antithetic": True, "noise": 0.1})
    assert edit_for(net, ev, torch.Generator().manual_seed(0)).kind == "split"


def test_tensor_options_without_a_blind_edit_are_refused_in_one_line() -> None:
    ev = Event("split", (1,), 1.0, "", "mine", options={"offsets": {"w": torch.zeros(2)}})
    with pytest.raises(TypeError, match="rule mine: a split event's options are not JSON"):
        replay_options(ev)
    blind = Event("split", (1,), 1.0, "", "mine", options={"noise": 0.5})
    assert replay_options(blind) == {"noise": 0.5}
