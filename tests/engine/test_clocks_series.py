"""Slow clocks, mitosis in series, and ACT inside the network."""

from __future__ import annotations

import pytest
import torch

import morpho
from morpho.cells_thermo import ThermoCell
from morpho.edits import insert_edit
from morpho.network import Network, NetworkConfig
from morpho.tissue import check_tissue


def _banks(n: int = 3, d: int = 8, seed: int = 0) -> dict[str, torch.Tensor]:
    cell = ThermoCell(n_heads=2)
    banks = cell.init_rows(n, d, torch.Generator().manual_seed(seed))
    banks["w_pred"] = torch.randn(n, d, d, generator=torch.Generator().manual_seed(1)) * 0.1
    return banks


def test_slow_clock_holds_state_between_ticks() -> None:
    """With only the inertial branch on, y − x̂ is the held state: constant between ticks,
    changing only at the ticks t = kp − 1."""
    cell, p, T = ThermoCell(n_heads=2), 4, 19
    banks = _banks()
    banks["w_attn_out"].zero_()
    banks["w_mlp2"].zero_()
    x = torch.randn(3, 2, T, 8)
    from morpho.cells import rms_norm

    xn = rms_norm(x) * banks["norm"][:, None, None, :]
    held = cell.forward_level(banks, x, None, clock=p).y - xn  # (n, B, T, d)
    assert held[:, :, : p - 1].abs().max() < 1e-5  # no tick yet: the zero state
    for t in range(p - 1, T - 1):
        same = torch.allclose(held[:, :, t], held[:, :, t + 1], atol=1e-5, rtol=0)
        assert same == ((t + 2) % p != 0), f"token {t + 1}: tick iff (t + 1) % p == p - 1"


def test_slow_clock_is_causal_and_coarse_grains() -> None:
    """Outputs before a token do not see it; the state is a function of block means only."""
    cell, p, T = ThermoCell(n_heads=2), 4, 16
    banks = _banks()
    x = torch.randn(3, 2, T, 8)
    y = cell.forward_level(banks, x, None, clock=p).y
    x2 = x.clone()
    x2[:, :, 9:] += torch.randn_like(x2[:, :, 9:])
    y2 = cell.forward_level(banks, x2, None, clock=p).y
    # (equal up to the rounding of the FFT convolution, which mixes every position)
    torch.testing.assert_close(y[:, :, :9], y2[:, :, :9], atol=1e-5, rtol=0)
    assert (y[:, :, 9:] - y2[:, :, 9:]).abs().max() > 1e-2
    # the held state reads block means: permuting tokens inside a block leaves the state
    # at the next tick unchanged, except for the normalisation, which is per token
    banks["w_attn_out"].zero_()
    banks["w_mlp2"].zero_()
    banks["norm"].fill_(1.0)
    xu = torch.nn.functional.normalize(torch.randn(3, 2, T, 8), dim=-1) * 8**0.5  # rms 1
    perm = xu.clone()
    perm[:, :, 4:8] = xu[:, :, [6, 4, 7, 5]]
    a = cell.forward_level(banks, xu, None, clock=p).y - xu
    b = cell.forward_level(banks, perm, None, clock=p).y - perm
    torch.testing.assert_close(a[:, :, 7:], b[:, :, 7:], atol=1e-5, rtol=1e-5)


def test_clock_one_is_the_fast_cell() -> None:
    cell = ThermoCell(n_heads=2)
    banks = _banks()
    x = torch.randn(3, 2, 12, 8)
    fast = cell.forward_level(banks, x, None)
    slow1 = cell._inertial_slow(banks, *_xn_a(banks, x), 1)
    h, err = cell._inertial(banks, *_xn_a(banks, x))
    torch.testing.assert_close(slow1[0], h, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(slow1[1], err, atol=1e-5, rtol=1e-5)
    assert torch.equal(cell.forward_level(banks, x, None, clock=1).y, fast.y)


def _xn_a(banks: dict[str, torch.Tensor], x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    from morpho.cells import rms_norm

    return rms_norm(x) * banks["norm"][:, None, None, :], torch.sigmoid(banks["decay"])


def test_seed_clocks_follow_levels_and_flops_fall() -> None:
    fast = Network(NetworkConfig(vocab_size=16))
    slow = Network(NetworkConfig(vocab_size=16, clock_ratio=2, clock_max=3))
    assert slow.tissue.clock.tolist() == [1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 1, 1]
    assert [lp.clock for lp in slow.plan] == [1, 2, 3, 1]
    assert slow.flops_per_token(64, gate=0.5) < fast.flops_per_token(64, gate=0.5)
    logits = slow(torch.randint(0, 16, (2, 10)))
    assert logits.shape == (2, 10, 16) and bool(torch.isfinite(logits).all())


def test_mixed_clocks_in_a_level_are_rejected() -> None:
    net = Network(NetworkConfig(vocab_size=16))
    t = net.tissue.clone()
    t.clock[2] = 2
    with pytest.raises(AssertionError, match="different clocks"):
        check_tissue(t)


@pytest.mark.parametrize("clock_ratio", [1, 2])
@pytest.mark.parametrize("demand", [0.0, 0.7])
def test_insert_in_series_is_function_preserving(clock_ratio: int, demand: float) -> None:
    torch.manual_seed(0)
    net = Network(NetworkConfig(vocab_size=16, clock_ratio=clock_ratio, demand_weight=demand))
    net.tissue.gate_ema = torch.rand(net.tissue.num_nodes)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
    x = torch.randint(0, 16, (2, 12))
    for _ in range(3):  # trained rows, non-zero optimizer state
        opt.zero_grad()
        net(x).logsumexp(-1).mean().backward()
        opt.step()
    with torch.no_grad():
        before = net(x)
    for cid in (net.cell_ids()[1], net.cell_ids()[4]):  # an input and a hidden cell
        levels_before = net.tissue.num_nodes
        edit = morpho.insert(net, cid, optimizer=opt)
        check_tissue(net.tissue)
        assert net.tissue.num_nodes == levels_before + 1
        with torch.no_grad():
            after = net(x)
        torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-5)
        new = net.row_of(edit.info["new_cells"][0])
        assert int(net.tissue.raw_skip[new]) == 1 and int(net.tissue.parent[new]) == cid
        # a's only outgoing edge is a -> c; c inherited a's former targets
        a = net.row_of(cid)
        src, dst = net.tissue.edge_index
        assert dst[src == a].tolist() == [new]
        assert int(net.tissue.level[new]) == int(net.tissue.level[a]) + 1
    # optimizer state has the new shapes; training goes on
    for p in net.parameters():
        for v in opt.state[p].values():
            if torch.is_tensor(v) and v.dim():
                assert v.shape == p.shape
    opt.zero_grad()
    net(x).logsumexp(-1).mean().backward()
    opt.step()


def test_insert_clock_slows_and_bad_cells_are_refused() -> None:
    net = Network(NetworkConfig(vocab_size=16, clock_ratio=2, clock_max=8))
    hidden = net.cell_ids()[6]  # level 2, clock 4
    edit = insert_edit(net, hidden)
    new = int((edit.tissue.cell_id == edit.info["new_cells"][0]).nonzero())
    assert int(edit.tissue.clock[new]) == 8
    out_cell = net.cell_ids()[-1]
    with pytest.raises(ValueError, match="output cell"):
        insert_edit(net, out_cell)


def test_ponder_network_respects_budget_and_counts_flops() -> None:
    net = Network(NetworkConfig(vocab_size=16, ponder_max=3))
    net.halt.linear.bias.data.fill_(-20.0)  # never wants to halt: every token uses the budget
    x = torch.randint(0, 16, (2, 10))
    out = net.run(x)
    logits, ponder = out.logits, out.ponder
    assert ponder is not None and ponder.n_passes_run == 3
    assert int(ponder.passes.max()) == 3
    one = Network(NetworkConfig(vocab_size=16))
    flops = net.flops_per_token(10, gate=1.0, passes=ponder.n_passes_run)
    assert flops > 2.5 * one.flops_per_token(10, gate=1.0) - 2 * 32 * 16
    (logits.logsumexp(-1).mean() + ponder.ponder_cost).backward()
    assert net.halt.linear.bias.grad is not None
    net.halt.linear.bias.data.fill_(20.0)  # always halts: one pass, the plain tissue
    with torch.no_grad():
        once = net.run(x)
        one_pass = once.logits
        plain = net.head_logits(net._tissue_pass(net.embed[x], capture=False).state)
    assert once.ponder is not None and once.ponder.n_passes_run == 1
    torch.testing.assert_close(one_pass, plain)
