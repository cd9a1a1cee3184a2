"""Laws of the optimizer-state policies at growth (:mod:`morpho.optstate`).

* ``exact`` is what an edit did before policies existed: the state is bit-equal to the
  default ``apply_edit``'s;
* ``asymmetric`` after a split: the state equals a reference built by hand from stable ids
  (old rows keep the pre-edit moments, the readout of daughter A scaled like its weight;
  daughter B's rows and the copied edges hold zero moments; step counts kept); the
  following steps equal a hand-written AdamW (and SGD with momentum) whose learning rate is
  ``lr · j / k`` on the new entries at the ``j``-th step and ``lr`` elsewhere; after ``k``
  steps the re-warm's bookkeeping is gone; an identity edit under it changes nothing;
* ``asymmetric`` after a widening: new channels re-warm, old entries keep their state;
* ``reset``: the optimizer state is empty and training goes on exactly like a fresh
  optimizer's;
* a checkpoint taken mid re-warm resumes it; bad policy names are refused with the list.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import pytest
import torch
from conftest import Host, loss_of, make_optimizer, step_result, tiny_net, tokens, train

import morpho
from morpho.apply import apply_edit
from morpho.edits import identity_edit, split_edit
from morpho.growth.config import GrowthConfig
from morpho.growth.rule import Event, GrowthView, Rule
from morpho.growth.scheduler import Scheduler
from morpho.optstate import REWARM_LEFT, StatePolicy, install_rewarm, new_rows
from morpho.surgery import REWARM, RowMap
from morpho.tissue import HIDDEN

K = 3  # re-warm steps under test


def _trained(opt_name: str = "adamw", cell_type: str = "wide"):
    torch.manual_seed(0)
    net = tiny_net(cell_type=cell_type)
    opt = make_optimizer(opt_name, net)
    train(net, opt, 3)
    return net, opt


def _hidden(net) -> int:
    return int(net.tissue.cell_id[net.tissue.role == HIDDEN][0])


def _state_by_key(net, opt, name: str, key: str) -> dict:
    """Rows of state ``key`` of bank ``name`` by stable id (cell id, or edge id)."""
    value = opt.state[net.banks[name]][key]
    ids = net.tissue.edge_id if name == "strength" else net.tissue.cell_id
    return {int(i): value[r].clone() for r, i in enumerate(ids.tolist())}


def test_new_rows_are_fresh_rows_and_second_readers() -> None:
    rmap = RowMap.build(torch.tensor([0, 1, 1, 2, -1, 0]))
    assert new_rows(rmap).tolist() == [False, False, True, False, True, True]


def test_exact_policy_is_the_default_carry() -> None:
    net, opt = _trained()
    net2, opt2 = copy.deepcopy((net, opt))
    cid = _hidden(net)
    torch.manual_seed(1)
    apply_edit(net, split_edit(net, cid), opt)
    torch.manual_seed(1)
    apply_edit(net2, split_edit(net2, cid), opt2, policy=StatePolicy("exact"))
    for p, p2 in zip(net.parameters(), net2.parameters(), strict=True):
        assert torch.equal(p, p2)
        for key, value in opt.state[p].items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(opt2.state[p2][key]))


def test_asymmetric_split_state_equals_hand_built_reference() -> None:
    net, opt = _trained()
    cid = _hidden(net)
    before = {
        (name, key): _state_by_key(net, opt, name, key)
        for name in net.banks
        for key in ("exp_avg", "exp_avg_sq")
    }
    steps = {name: opt.state[p]["step"].clone() for name, p in net.banks.items()}
    edit = morpho.split(net, cid, optimizer=opt, optimizer_state="asymmetric", rewarm_steps=K)
    a, b = edit.info["new_cells"]
    new_edges = set(edit.info["new_edges"])
    for name, p in net.banks.items():
        assert torch.equal(opt.state[p]["step"], steps[name])
        for key, order in (("exp_avg", 1), ("exp_avg_sq", 2)):
            got, old = _state_by_key(net, opt, name, key), before[(name, key)]
            for i, value in got.items():
                if name == "strength":
                    want = torch.zeros_like(value) if i in new_edges else old[i]
                    src = int(net.tissue.edge_index[0][net.edge_row_of(i)])
                    if i not in new_edges and src == net.row_of(a):
                        want = want * 0.5**order  # A's outgoing edges: halved weight
                elif i == b:
                    want = torch.zeros_like(value)
                elif i == a:
                    share = 0.5**order if net.bank_specs[name].split == "share" else 1.0
                    want = old[cid] * share
                else:
                    want = old[i]
                assert torch.equal(value, want), (name, key, i)


def _adamw_step(p, g, m, v, step, lr, group) -> None:
    """One AdamW step by hand, with ``lr`` a tensor (per entry) or a number."""
    b1, b2 = group["betas"]
    p.mul_(1 - lr * group["weight_decay"])
    m.mul_(b1).add_((1 - b1) * g)
    v.mul_(b2).add_((1 - b2) * g * g)
    bc1, bc2 = 1 - b1**step, 1 - b2**step
    p.sub_(lr / bc1 * m / ((v / bc2).sqrt() + group["eps"]))


def _sgd_step(p, g, buf, lr, group) -> None:
    """One SGD (momentum, Nesterov, weight decay) step by hand."""
    g = g + group["weight_decay"] * p
    buf.mul_(group["momentum"]).add_(g)
    p.sub_(lr * (g + group["momentum"] * buf))


@pytest.mark.parametrize("opt_name", ["adamw", "sgd-momentum"])
def test_rewarm_steps_equal_a_hand_written_optimizer_with_ramped_lr(opt_name: str) -> None:
    net, opt = _trained(opt_name)
    cid = _hidden(net)
    morpho.split(net, cid, optimizer=opt, optimizer_state="asymmetric", rewarm_steps=K)
    groups = {id(p): g for g in opt.param_groups for p in g["params"]}
    ref = {}
    for p in net.parameters():
        st = opt.state[p]
        moments = ("exp_avg", "exp_avg_sq") if opt_name == "adamw" else ("momentum_buffer",)
        new = st[REWARM] > 0 if REWARM in st else torch.zeros_like(p, dtype=torch.bool)
        ref[id(p)] = [p.detach().clone(), *(st[k].clone() for k in moments), new]
    assert any(bool(r[-1].any()) for r in ref.values())
    for j in range(1, K + 3):
        loss = loss_of(net, tokens(100 + j, seq_len=9))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        for p in net.parameters():
            group, (q, *moments, new) = groups[id(p)], ref[id(p)]
            lr = torch.where(new, group["lr"] * min(j, K) / K, group["lr"])
            if opt_name == "adamw":
                step = float(opt.state[p]["step"]) + 1
                _adamw_step(q, p.grad, *moments, step, lr, group)
            else:
                _sgd_step(q, p.grad, *moments, lr, group)
        opt.step()
        for p in net.parameters():
            torch.testing.assert_close(p.detach(), ref[id(p)][0], rtol=1e-5, atol=1e-6)
    assert not any(REWARM in st or REWARM_LEFT in st for st in opt.state.values())


def test_rewarm_ramp_slows_the_new_rows_first_step() -> None:
    """The first step after birth moves the new rows by 1/k of what the same policy without
    a re-warm moves them: the multiplier is really applied."""
    net, opt = _trained()
    cid = _hidden(net)
    net2, opt2 = copy.deepcopy((net, opt))
    morpho.split(net, cid, optimizer=opt, optimizer_state="asymmetric", rewarm_steps=K)
    morpho.split(net2, cid, optimizer=opt2, optimizer_state="asymmetric", rewarm_steps=0)
    w0 = net.banks["w_read"].detach().clone()
    train(net, opt, 1, seed=50)
    train(net2, opt2, 1, seed=50)
    rows = new_rows_of(net, "w_read", opt)
    d1 = (net.banks["w_read"].detach() - w0)[rows]
    d2 = (net2.banks["w_read"].detach() - w0)[rows]
    assert d2.abs().sum() > 0
    torch.testing.assert_close(d1, d2 / K, rtol=1e-4, atol=1e-7)


def new_rows_of(net, name: str, opt) -> torch.Tensor:
    """Rows of bank ``name`` that still re-warm (after one step: ``K − 1`` left)."""
    left = opt.state[net.banks[name]][REWARM]
    return (left.flatten(1) > 0).any(1)


def test_asymmetric_identity_edit_is_bit_invisible() -> None:
    net, opt = _trained()
    net2, opt2 = copy.deepcopy((net, opt))
    apply_edit(net, identity_edit(net), opt, policy=StatePolicy("asymmetric", K))
    train(net, opt, 2, seed=9)
    train(net2, opt2, 2, seed=9)
    for p, p2 in zip(net.parameters(), net2.parameters(), strict=True):
        assert torch.equal(p, p2)
        assert torch.equal(opt.state[p]["exp_avg_sq"], opt2.state[p2]["exp_avg_sq"])


def test_asymmetric_widen_rewarms_new_channels_only() -> None:
    net, opt = _trained()
    before = {n: opt.state[p]["exp_avg"].clone() for n, p in net.banks.items()}
    edit = morpho.widen(net, 12, optimizer=opt, optimizer_state="asymmetric", rewarm_steps=K)
    for name in edit.channels:
        st = opt.state[net.banks[name]]
        new = st[REWARM] > 0
        assert int(new.sum()) == net.banks[name].numel() - before[name].numel()
        assert torch.equal(st["exp_avg"][~new], before[name].flatten())
        assert not bool(st["exp_avg"][new].any())


def test_reset_equals_a_fresh_optimizer() -> None:
    net, opt = _trained()
    cid = _hidden(net)
    morpho.split(net, cid, optimizer=opt, optimizer_state="reset")
    assert len(opt.state) == 0
    net2 = copy.deepcopy(net)
    fresh = make_optimizer("adamw", net2)
    train(net, opt, 3, seed=20)
    train(net2, fresh, 3, seed=20)
    for p, p2 in zip(net.parameters(), net2.parameters(), strict=True):
        assert torch.equal(p, p2)


def test_checkpoint_mid_rewarm_resumes_it() -> None:
    net, opt = _trained()
    morpho.split(net, _hidden(net), optimizer=opt, optimizer_state="asymmetric", rewarm_steps=K)
    train(net, opt, 1, seed=30)
    net2 = copy.deepcopy(net)
    opt2 = make_optimizer("adamw", net2)
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))
    install_rewarm(opt2)
    train(net, opt, K, seed=31)
    train(net2, opt2, K, seed=31)
    for p, p2 in zip(net.parameters(), net2.parameters(), strict=True):
        assert torch.equal(p, p2)


def test_bad_policy_is_refused_with_the_choices() -> None:
    net, opt = _trained()
    with pytest.raises(ValueError, match="expected one of: exact, asymmetric, reset"):
        morpho.split(net, _hidden(net), optimizer=opt, optimizer_state="copy")
    with pytest.raises(ValueError, match="growth.unknown optimizer_state policy 'x'"):
        GrowthConfig(optimizer_state="x")
    with pytest.raises(ValueError, match="rewarm_steps must be >= 0"):
        GrowthConfig.from_dict({"optimizer_state": "asymmetric", "rewarm_steps": -1})


@dataclass(frozen=True)
class _SplitFirstHidden(Rule):
    """Proposes one split of a given cell."""

    cell: int = 0

    def propose(self, view: GrowthView) -> list[Event]:
        return [Event("split", (self.cell,), 1.0, "scripted")]


def test_scheduler_applies_and_records_its_policy() -> None:
    net, _ = _trained()
    cid = _hidden(net)
    cfg = GrowthConfig(rules=(), optimizer_state="asymmetric", rewarm_steps=K, max_cells=99)
    sch = Scheduler(cfg, rules={"scripted": _SplitFirstHidden(cid)})
    host = Host(net, [sch])
    train(net, host.optimizer, 1)
    sch.on_train_start(host)
    res = step_result(net, tokens(0))
    sch.on_step_end(host, 99, res)
    (record,) = sch.check(host, 100, res)
    assert record["optimizer_state"] == "asymmetric"
    b = net.row_of(record["new_cells"][1])
    st = host.optimizer.state[net.banks["w_read"]]
    assert bool((st[REWARM][b] == K).all()) and not bool(st["exp_avg"][b].any())
