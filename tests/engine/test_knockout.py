"""Apoptosis is measured before it happens (DESIGN invariant 3).

The scheduler's knockout test predicts exactly the loss change a removal causes, refuses a
death that would raise the batch loss by more than ``knockout_tolerance``, and records the
measured change in ``events.jsonl``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from conftest import Host, tiny_net, tokens

from morpho.apply import remove
from morpho.growth.config import GrowthConfig
from morpho.growth.probes import knockout_dloss
from morpho.growth.rule import Event
from morpho.growth.scheduler import Scheduler
from morpho.tissue import HIDDEN


def _host(net, tolerance: float):
    cfg = GrowthConfig(rules=(), min_cells=1, keep_levels=False, knockout_tolerance=tolerance)
    sch = Scheduler(cfg, rules={})
    host = Host(net, [sch])
    sch.on_train_start(host)
    return sch, host


def _batch():
    x = tokens(3, batch=4, seq_len=12)
    return x, torch.roll(x, -1, dims=1)


def _ce(net, batch) -> float:
    x, y = batch
    with torch.no_grad():
        return float(F.cross_entropy(net(x).flatten(0, 1), y.flatten()))


def test_knockout_predicts_the_loss_change_of_the_removal_exactly() -> None:
    net = tiny_net()
    _, host = _host(net, math.inf)
    t = net.tissue
    level1, level2 = (t.cell_id[(t.role == HIDDEN) & (t.level == lvl)].tolist() for lvl in (1, 2))
    for cell in (level1[0], level2[0], level1[1]):  # never the last path
        before = _ce(net, _batch())
        weights = {k: v.detach().clone() for k, v in net.state_dict().items()}
        predicted = knockout_dloss(net, net.row_of(cell), _batch())
        assert all(torch.equal(v, weights[k]) for k, v in net.state_dict().items())
        remove(net, cell)
        assert abs((_ce(net, _batch()) - before) - predicted) < 1e-5


def test_deaths_above_the_tolerance_are_refused_and_others_recorded() -> None:
    net = tiny_net()
    hidden = net.tissue.cell_id[net.tissue.role == HIDDEN].tolist()
    deltas = {c: knockout_dloss(net, net.row_of(c), _batch()) for c in hidden}
    harmful = max(deltas, key=deltas.get)
    assert deltas[harmful] > 0
    sch, host = _host(net, tolerance=deltas[harmful] / 2)
    assert sch._apply(host, Event("remove", (harmful,), 1.0, "test"), 100, _batch()) is None
    assert sch.refused == 1 and harmful in net.cell_ids()
    sch, host = _host(net, tolerance=deltas[harmful] * 2)
    record = sch._apply(host, Event("remove", (harmful,), 1.0, "test"), 100, _batch())
    assert record is not None and harmful not in net.cell_ids()
    assert abs(record["stats"]["knockout_dloss"] - deltas[harmful]) < 1e-6
