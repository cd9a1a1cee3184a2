"""The split-steepest rule and its probe (Splitting Steepest Descent, Liu et al. 2019).

* the probe is faithful: splitting a trained cell along ``±ε v`` (its most negative
  eigenvector) changes the loss by ``½ ε² λ_min`` to second order — the measured change
  over ``½ ε²`` tends to the probe's ``λ_min`` as ``ε`` shrinks (the split preserves the
  function to first order), on every cell type under test; no random direction does better;
* on a hand-built view the rule picks the hidden cell with the most negative eigenvalue
  (none when every ``λ_min`` is above ``−threshold``) and asks for the ``±ε‖θ‖v`` split;
* in a scheduler round the probe runs only when the rule is enabled, and its level passes
  are charged to a FLOP counter attached to the network;
* bad parameters are refused, naming the parameter.
"""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
import torch.nn.functional as F
from conftest import (
    CELL_TYPES_UNDER_TEST,
    Host,
    make_optimizer,
    probed_step,
    tiny_net,
    tokens,
    train,
    view,
)

from morpho.apply import apply_edit
from morpho.flops import FlopCounter
from morpho.growth.config import GrowthConfig
from morpho.growth.dispatch import edit_for
from morpho.growth.rule import RULES, Event
from morpho.growth.scheduler import Scheduler
from morpho.growth.splitting import _LevelProduct, copied_banks, output_gradients, splitting_probe
from morpho.growth_rules.split_steepest import SplitSteepest
from morpho.tissue import HIDDEN


def _setup(cell_type: str):
    torch.manual_seed(0)
    net = tiny_net(cell_type=cell_type)
    train(net, make_optimizer("adamw", net), 5)
    x = tokens(3, batch=4, seq_len=10)
    return net, (x[:, :-1], x[:, 1:])


def _ce(net, batch) -> float:
    with torch.no_grad():
        return float(F.cross_entropy(net(batch[0]).flatten(0, 1), batch[1].flatten()))


@pytest.mark.parametrize("cell_type", CELL_TYPES_UNDER_TEST)
def test_split_along_the_eigenvector_changes_the_loss_by_half_eps2_lambda(cell_type) -> None:
    net, batch = _setup(cell_type)
    probe = splitting_probe(net, batch, torch.Generator().manual_seed(0), iters=20)
    assert probe is not None
    lam = probe["min_eig"]
    hidden = net.tissue.role == HIDDEN
    assert bool(lam[hidden].isfinite().all()) and bool(lam[~hidden].isnan().all())
    row = int(torch.nan_to_num(lam, nan=1e9).argmin())
    cid = int(net.tissue.cell_id[row])
    base = _ce(net, batch)
    ratios = []
    for eps in (0.1, 0.03):
        split = copy.deepcopy(net)
        off = {k: eps * probe["direction"][k][row] for k in copied_banks(net)}
        apply_edit(split, edit_for(split, _event(cid, off)))
        ratios.append((_ce(split, batch) - base) / (0.5 * eps**2))
    assert float(lam[row]) < 0
    assert abs(ratios[1] - float(lam[row])) < 0.05 * abs(float(lam[row]))
    assert abs(ratios[1] - float(lam[row])) < abs(ratios[0] - float(lam[row])) + 1e-3


def _event(cid, offsets):
    return Event("split", (cid,), 1.0, "test", options={"offsets": offsets})


def test_no_random_direction_is_more_negative_than_the_eigenvector() -> None:
    net, batch = _setup("wide")
    probe = splitting_probe(net, batch, torch.Generator().manual_seed(0), iters=20)
    inputs, g = output_gradients(net, batch)
    li = int(net.tissue.level[net.tissue.role == HIDDEN][0])
    lp = net.plan[li]
    product = _LevelProduct(net, li, inputs[li], g[lp.start : lp.end], 1e-3)
    u = torch.randn(lp.end - lp.start, sum(net.banks[k][0].numel() for k in copied_banks(net)))
    u = u / u.norm(dim=1, keepdim=True)
    rayleigh = (u * product(u)).sum(1)
    assert bool((rayleigh >= probe["min_eig"][lp.start : lp.end] - 1e-4).all())


def test_rule_picks_the_most_negative_hidden_cell_and_splits_along_it() -> None:
    v = view()
    t = v.tissue
    n = t.num_nodes
    hidden = (t.role == HIDDEN).nonzero().flatten().tolist()
    lam = torch.full((n,), float("nan"))
    lam[hidden] = torch.tensor([-0.1, -0.7, 0.3, -0.2, 0.0, -0.05])[: len(hidden)]
    direction = {"w": torch.randn(n, 3), "b": torch.randn(n)}
    norms = torch.arange(1.0, n + 1.0)
    probe = {"min_eig": lam, "direction": direction, "theta_norm": norms}

    (ev,) = SplitSteepest(epsilon=0.2).propose(dataclasses.replace(v, splitting=probe))
    row = hidden[1]
    assert ev.kind == "split" and ev.cells == (int(t.cell_id[row]),)
    assert ev.score == pytest.approx(1.7)
    for k, d in direction.items():
        torch.testing.assert_close(ev.options["offsets"][k], 0.2 * float(norms[row]) * d[row])
    assert SplitSteepest(threshold=1.0).propose(dataclasses.replace(v, splitting=probe)) == []
    assert SplitSteepest().propose(v) == []  # no probe: nothing
    two = SplitSteepest(max_splits=2).propose(dataclasses.replace(v, splitting=probe))
    assert [e.cells[0] for e in two] == [int(t.cell_id[hidden[1]]), int(t.cell_id[hidden[3]])]


def test_scheduler_runs_the_probe_for_the_rule_and_charges_its_flops() -> None:
    net, _ = _setup("wide")
    cfg = GrowthConfig(rules=("split_steepest",), max_cells=99, start=0)
    sch = Scheduler(cfg)
    host = Host(net, [sch])
    counter = FlopCounter().attach(net)
    sch.on_train_start(host)
    res = probed_step(net)
    sch.on_step_end(host, 99, res)
    before = counter.by_kind["probe"]
    records = sch.check(host, 100, res)
    assert counter.by_kind["probe"] > before
    assert len(records) == 1 and records[0]["rule"] == "split_steepest"
    assert records[0]["stats"]["min_eig"] < 0
    quiet = Scheduler(GrowthConfig(rules=("mitosis",), max_cells=99))
    quiet.on_train_start(host)
    spent = counter.by_kind["probe"]
    quiet.check(host, 100, res)
    assert counter.by_kind["probe"] == spent  # no rule asked: no probe


def test_registered_and_bad_parameters_are_refused() -> None:
    assert RULES.get("split_steepest") is SplitSteepest
    with pytest.raises(ValueError, match="growth.split_steepest.epsilon must be > 0"):
        SplitSteepest(epsilon=0)
    with pytest.raises(ValueError, match="growth.split_steepest.threshold must be >= 0"):
        SplitSteepest(threshold=-1)


def test_no_splitting_probe_is_run_at_the_cell_cap() -> None:
    net, _ = _setup("wide")
    capped = Scheduler(GrowthConfig(rules=("split_steepest",), max_cells=net.tissue.num_nodes))
    host = Host(net, [capped])
    counter = FlopCounter().attach(net)
    capped.on_train_start(host)
    res = probed_step(net)
    capped.on_step_end(host, 99, res)
    spent = counter.by_kind["probe"]
    assert capped.check(host, 100, res) == []  # no split can be accepted at the cap
    assert counter.by_kind["probe"] == spent  # so the probe's FLOPs are not spent
