"""Laws of width growth (:func:`morpho.edits.widen_edit`) on the wide-stream cell.

* the network function is preserved on a trained network (logits, aux loss, gate and
  surprise statistics), for every variant of the cell and when widened twice;
* the optimizer state equals a reference built by hand: old entries keep every moment and
  the step count, new entries are zero (Adagrad's ``sum``: its initial value);
* the first step after widening moves every old entry exactly as a step of the unwidened
  network does (same gradient: new channels contribute nothing, forward or backward);
* the new channels learn: their write rows get a gradient at once and move;
* a widened network is the network its config describes: checkpoint round trip, parameter
  count and FLOPs agree with a network built from the widened config;
* bad input (no growth, a width the heads do not divide, a type that cannot widen, an
  undeclared bank or channel axis) is refused with one line and leaves the network as it was.
"""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
from conftest import (
    OPTIMIZERS,
    GatedCell,
    assert_invariants,
    loss_of,
    make_optimizer,
    tiny_net,
    tokens,
    train,
)

import morpho
from morpho.checkpoint import load_network, save_checkpoint
from morpho.flops import FlopCounter
from morpho.network import Network
from morpho.surgery import MOMENT_ORDER, ChannelMap, channel_grid, widen_rows

D_OLD, D_NEW = 8, 12  # 2 heads of 4 -> 3 heads of 4
VARIANTS = {
    "default": {},
    "lti": {"recurrence": "lti"},
    "no-attention": {"attention": False},
    "no-gate": {"gate": False},
    "plain": {"conv_taps": 0, "out_gate": False},
    "rescale": {"widen_norms": "rescale"},  # norm gains rescaled instead of norm_width kept
}
RESCALED = {"w_pred": 0.5, "mlp_norm": -0.5}  # widen_norms="rescale": (d'/d) ** p


def trained_wide(steps: int = 6, opt_name: str = "adam", **options: object):
    """A wide-cell network of ``D_OLD`` channels after ``steps`` optimizer steps."""
    net = tiny_net(cell_type="wide", cell_options=dict(options))
    opt = make_optimizer(opt_name, net)
    train(net, opt, steps)
    return net, opt


def run_stats(net: Network, x: torch.Tensor) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        out = net.run(x)
    return {
        "logits": out.logits,
        "aux": out.aux_loss,
        **{k: out.stats[k] for k in ("surprise", "gate_mean", "gate_entropy")},
    }


def old_entries(new: torch.Tensor, edit: morpho.Edit, name: str) -> torch.Tensor:
    """The entries of parameter ``name`` (widened or not) at the old positions."""
    bank = name.removeprefix("banks.")
    if bank not in edit.channels:
        return new
    return new[(slice(None), *channel_grid(edit.channels[bank].index))]


# ------------------------------------------------------------------ function
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_widening_a_trained_network_preserves_its_function(variant: str) -> None:
    net, opt = trained_wide(**VARIANTS[variant])
    x = tokens(50)
    before = run_stats(net, x)
    edit = morpho.widen(net, D_NEW, optimizer=opt)
    after = run_stats(net, x)
    assert net.cfg.d_cell == D_NEW and edit.info["new_width"] == D_NEW
    rescaled = VARIANTS[variant].get("widen_norms") == "rescale"  # a plain cell of width 12
    assert ("norm_width" in net.cfg.cell_options) is not rescaled
    for key, value in before.items():
        torch.testing.assert_close(after[key], value, rtol=1e-5, atol=1e-6, msg=key)
    assert_invariants(net, opt)


def test_widening_twice_preserves_the_function_and_keeps_the_first_norm_width() -> None:
    net, opt = trained_wide()
    x = tokens(51)
    before = run_stats(net, x)["logits"]
    morpho.widen(net, D_NEW, optimizer=opt)
    train(net, opt, 2, seed=100)
    mid = run_stats(net, x)["logits"]
    morpho.widen(net, 16, optimizer=opt)
    torch.testing.assert_close(run_stats(net, x)["logits"], mid, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(mid, before)  # the two steps in between did train
    assert net.cfg.n_heads == 4 and net.cfg.cell_options["norm_width"] == D_OLD


def test_a_widened_network_is_the_network_its_config_describes(tmp_path) -> None:
    net, opt = trained_wide()
    morpho.widen(net, D_NEW, optimizer=opt)
    fresh = Network(net.cfg, tissue=net.tissue.clone())
    assert {k: v.shape for k, v in fresh.banks.items()} == {
        k: v.shape for k, v in net.banks.items()
    }
    assert fresh.n_params() == net.n_params()
    save_checkpoint(tmp_path / "w.pt", net, opt, step=9)
    net2, payload = load_network(tmp_path / "w.pt")
    x = tokens(52)
    torch.testing.assert_close(run_stats(net2, x)["logits"], run_stats(net, x)["logits"])
    opt2 = make_optimizer("adam", net2)
    opt2.load_state_dict(payload["optimizer"])
    train(net, opt, 2, seed=200)
    train(net2, opt2, 2, seed=200)
    for (name, p), q in zip(net.named_parameters(), net2.parameters(), strict=True):
        assert torch.equal(p, q), name  # resumed training is the same training


# ------------------------------------------------------------- optimizer state
@pytest.mark.parametrize("norms", ["keep", "rescale"])
@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
def test_optimizer_state_equals_a_reference_built_by_hand(opt_name: str, norms: str) -> None:
    net, opt = trained_wide(opt_name=opt_name, widen_norms=norms)
    old = {k: v for k, v in net.banks.items()}
    old_state = {k: {s: copy.deepcopy(t) for s, t in opt.state[v].items()} for k, v in old.items()}
    n_groups = [len(g["params"]) for g in opt.param_groups]
    edit = morpho.widen(net, D_NEW, optimizer=opt)
    assert [len(g["params"]) for g in opt.param_groups] == n_groups
    init = opt.defaults.get("initial_accumulator_value", 0.0)
    for name, p in net.banks.items():
        for key, value in old_state[name].items():
            got = opt.state[p][key]
            if not torch.is_tensor(value) or value.dim() == 0 or name not in edit.channels:
                assert torch.equal(torch.as_tensor(got), torch.as_tensor(value)), (name, key)
                continue
            fill = init if key == "sum" else 0.0
            reference = torch.full(p.shape, fill)  # new entries: a fresh optimizer's value
            s = (D_NEW / D_OLD) ** RESCALED.get(name, 0.0) if norms == "rescale" else 1.0
            order = MOMENT_ORDER[key]  # a rescaled gain's moments follow its gradient, s^-1
            reference[(slice(None), *channel_grid(edit.channels[name].index))] = value * s**-order
            assert torch.equal(got, reference), (name, key)


def test_new_channels_sit_at_the_end_of_every_block() -> None:
    net, opt = trained_wide()
    qkv, b_sel = net.banks["w_qkv"].detach().clone(), net.banks["b_select"].detach().clone()
    edit = morpho.widen(net, D_NEW, optimizer=opt)
    assert edit.channels["w_qkv"].index[1].tolist() == [*range(8), *range(12, 20), *range(24, 32)]
    for block in range(3):  # q, k, v each keep their heads and gain one at the end
        new = net.banks["w_qkv"][:, :D_OLD, block * D_NEW : block * D_NEW + D_OLD]
        assert torch.equal(new, qkv[:, :, block * D_OLD : (block + 1) * D_OLD])
    assert torch.equal(net.banks["b_select"][:, D_NEW + D_OLD :], torch.full((10, 4), 2.0))
    assert torch.equal(net.banks["b_select"][:, D_NEW : D_NEW + D_OLD], b_sel[:, D_OLD:])


@pytest.mark.parametrize("norms", ["keep", "rescale"])
def test_the_first_step_after_widening_moves_old_entries_as_without_it(norms: str) -> None:
    """With ``keep`` every old entry's gradient and step are unchanged; with ``rescale`` the
    rescaled gains (old entries ``s·w``) get the gradient ``g/s`` and the same step."""
    net, opt = trained_wide(opt_name="adamw", widen_norms=norms)
    ref = copy.deepcopy(net)
    ref_opt = make_optimizer("adamw", ref)
    ref_opt.load_state_dict(copy.deepcopy(opt.state_dict()))  # (it would share the moments)
    edit = morpho.widen(net, D_NEW, optimizer=opt)
    x = tokens(60, seq_len=9)
    for model, o in ((net, opt), (ref, ref_opt)):
        o.zero_grad(set_to_none=True)
        loss_of(model, x).backward()
    scale = {k: edit.channels[k].scale for k in edit.channels}
    before = {
        name: old_entries(q, edit, name).detach().clone() for name, q in net.named_parameters()
    }
    ref_before = {name: p.detach().clone() for name, p in ref.named_parameters()}
    for name, p in ref.named_parameters():
        q, s = dict(net.named_parameters())[name], scale.get(name.removeprefix("banks."), 1.0)
        torch.testing.assert_close(
            old_entries(q.grad, edit, name) * s, p.grad, rtol=1e-5, atol=1e-7
        )
    opt.step()
    ref_opt.step()
    for name, p in ref.named_parameters():
        q, s = dict(net.named_parameters())[name], scale.get(name.removeprefix("banks."), 1.0)
        if s == 1.0:
            torch.testing.assert_close(old_entries(q, edit, name), p, rtol=1e-5, atol=1e-7)
        else:  # Adam's step is the same size; weight decay acts on the rescaled value
            step = old_entries(q, edit, name) - before[name]
            torch.testing.assert_close(step, p - ref_before[name], rtol=1e-3, atol=1e-6)
    assert set(scale.values()) == ({1.0} if norms == "keep" else {1.0, 1.5**0.5, 1.5**-0.5})


def test_the_new_channels_learn() -> None:
    net, opt = trained_wide()
    morpho.widen(net, D_NEW, optimizer=opt)
    write_before = net.banks["w_write"][:, D_OLD:].detach().clone()
    assert not bool(write_before.any())  # zero-output at birth
    opt.zero_grad(set_to_none=True)
    loss_of(net, tokens(70, seq_len=9)).backward()
    assert float(net.banks["w_write"].grad[:, D_OLD:].abs().sum()) > 0
    assert float(net.banks["w_read"].grad[:, :, D_OLD:].abs().sum()) > 0
    opt.step()
    train(net, opt, 3, seed=300)
    assert float(net.banks["w_write"].detach()[:, D_OLD:].abs().mean()) > 0
    assert float(net.banks["w_read"].detach()[:, :, D_OLD:].abs().mean()) > 0


# --------------------------------------------------------------------- FLOPs
def test_flops_follow_the_width() -> None:
    net, opt = trained_wide()
    before = net.flops_per_token(8, gate=1.0)
    counter = FlopCounter().attach(net)
    train(net, opt, 1)
    per_step_before = counter.dense
    morpho.widen(net, D_NEW, optimizer=opt)
    after = net.flops_per_token(8, gate=1.0)
    assert after > before
    assert after == Network(net.cfg, tissue=net.tissue.clone()).flops_per_token(8, gate=1.0)
    train(net, opt, 1)
    assert counter.dense - per_step_before == pytest.approx(per_step_before * after / before)


# ----------------------------------------------------------------- bad input
def _unchanged(net: Network, opt, fn) -> str:
    banks = {k: v for k, v in net.banks.items()}
    cfg = net.cfg
    with pytest.raises(ValueError) as info:
        fn()
    assert net.cfg is cfg and all(net.banks[k] is v for k, v in banks.items())
    assert all(any(p is q for g in opt.param_groups for q in g["params"]) for p in banks.values())
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("width", [D_OLD, D_OLD - 2, 10])
def test_no_growth_or_a_width_the_heads_do_not_divide_is_refused(width: int) -> None:
    net, opt = trained_wide()
    message = _unchanged(net, opt, lambda: morpho.widen(net, width, optimizer=opt))
    assert ("above the current 8" in message) if width <= D_OLD else ("multiple of 4" in message)


@pytest.mark.parametrize("cell_type", ["thermo", "gated"])
def test_cell_types_that_cannot_widen_say_so(cell_type: str) -> None:
    net = tiny_net(cell_type=cell_type)
    opt = make_optimizer("adam", net)
    message = _unchanged(net, opt, lambda: morpho.widen(net, 16, optimizer=opt))
    assert f"cell type {cell_type!r} cannot widen" in message and "wide" in message


def test_an_undeclared_bank_is_refused_naming_the_declared_ones() -> None:
    net, opt = trained_wide()
    net.banks["stowaway"] = torch.nn.Parameter(torch.zeros(10, D_OLD))
    opt.add_param_group({"params": [net.banks["stowaway"]]})
    message = _unchanged(net, opt, lambda: morpho.widen(net, D_NEW, optimizer=opt))
    assert "'stowaway' is not declared" in message and "w_write" in message


class _UndeclaredGated(GatedCell):
    """The gated cell claiming it can widen, with no channel axis declared."""

    def widened(self, network, d_cell):
        return dataclasses.replace(network, d_cell=d_cell)


def test_a_bank_growing_on_an_undeclared_axis_is_refused() -> None:
    net = tiny_net(cell_type="gated")
    net.cell = _UndeclaredGated(net.cell.cfg)  # (not registered: the registry stays as it was)
    opt = make_optimizer("adam", net)
    message = _unchanged(net, opt, lambda: morpho.widen(net, 16, optimizer=opt))
    assert "bank 'norm' changes axis 0 from 8 to 16" in message and "declared: none" in message


def test_widen_rows_law() -> None:
    x = torch.arange(12.0).view(1, 3, 4)
    index = (torch.tensor([0, 1, 2]), torch.tensor([0, 1, 3, 4]))
    cmap = ChannelMap(index, torch.full((1, 4, 6), -1.0))
    out = widen_rows(x, cmap, fill=cmap.fill)
    assert out.shape == (1, 4, 6)
    assert torch.equal(out[0, :3][:, [0, 1, 3, 4]], x[0])
    assert bool((out[0, 3] == -1).all()) and bool((out[0, :, [2, 5]] == -1).all())
