"""Free energy: terms are additive and weighted as configured; wiring is edge length; the
gate entropy is recorded by the forward; the EMAs live in the tissue and survive edits."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import Host, step_result, tiny_net, tokens

from morpho.cells import binary_entropy
from morpho.edits import remove_edit, split_edit
from morpho.energy import ENERGY_TERMS, free_energy, register_energy_term, wiring_cost
from morpho.growth.config import GrowthConfig
from morpho.growth.scheduler import Scheduler
from morpho.tissue import HIDDEN, OUTPUT, seed_tissue
from morpho.trainer import TrainConfig


def stats(n: int = 5, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    names = ("surprise", "gate_mean", "gate_entropy", "wiring")
    return {k: torch.rand(n, generator=g) for k in names}


def test_terms_are_additive_and_weighted() -> None:
    s = stats()
    u, h, w = s["surprise"], s["gate_entropy"], s["wiring"]
    assert torch.allclose(free_energy(s, {"internal": 1.0}), u)
    assert torch.allclose(free_energy(s, {"internal": 2.5}), 2.5 * u)
    both = free_energy(s, {"internal": 1.0, "wiring": 0.3})
    assert torch.allclose(both, free_energy(s, {"internal": 1.0}) + free_energy(s, {"wiring": 0.3}))
    tau, gamma = 0.2, 0.05
    weights = GrowthConfig(tau=tau, gamma=gamma).energy_weights()
    assert torch.allclose(free_energy(s, weights), u - tau * h + gamma * w)  # F = U − τS + γW


def test_entropy_term_falls_back_to_the_entropy_of_the_mean_gate() -> None:
    s = stats()
    del s["gate_entropy"]
    assert torch.allclose(free_energy(s, {"entropy": 1.0}), binary_entropy(s["gate_mean"]))
    assert binary_entropy(torch.tensor(0.5)).item() == pytest.approx(math.log(2))
    assert binary_entropy(torch.tensor([0.0, 1.0])).max().item() < 1e-4


def test_a_registered_term_joins_the_sum(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ENERGY_TERMS._items, "norm", lambda s: s["norm_stat"])
    s = {**stats(), "norm_stat": torch.ones(5)}
    f = free_energy(s, {"internal": 1.0, "norm": -0.5})
    assert torch.allclose(f, s["surprise"] - 0.5)
    assert register_energy_term.__name__ == "register_energy_term"


def test_errors_name_the_term_or_statistic() -> None:
    with pytest.raises(ValueError, match="unknown energy term 'heat'; expected one of: .*internal"):
        free_energy(stats(), {"heat": 1.0})
    with pytest.raises(ValueError, match="needs statistic 'wiring'"):
        free_energy({"surprise": torch.ones(2)}, {"wiring": 1.0})
    with pytest.raises(ValueError, match="at least one"):
        free_energy(stats(), {})


def test_wiring_cost_is_edge_length_shared_by_both_ends() -> None:
    t = seed_tissue((1, 1, 1))
    t.pos = torch.tensor([[0.0, 0, 0], [0, 0, 1.0], [0, 0, 4.0]])  # edges of length 1 and 3
    assert torch.allclose(wiring_cost(t), torch.tensor([0.5, 2.0, 1.5]))
    t = seed_tissue((2, 3, 3, 2))
    length = (t.pos[t.edge_index[0]] - t.pos[t.edge_index[1]]).norm(dim=-1)
    assert wiring_cost(t).sum().item() == pytest.approx(length.sum().item(), rel=1e-5)
    t.pos[0] *= 10  # move a cell away: its edges, and only those cells' costs, grow
    far = wiring_cost(t)
    assert far[0] > wiring_cost(seed_tissue((2, 3, 3, 2)))[0]


def test_forward_records_gate_entropy_without_extra_pass() -> None:
    net = tiny_net()
    stats = net.run(tokens(0)).stats
    h, g = stats["gate_entropy"], stats["gate_mean"]
    assert h.shape == g.shape == (net.tissue.num_nodes,)
    assert not h.requires_grad
    assert bool((h >= 0).all()) and bool((h <= binary_entropy(g) + 1e-6).all())  # Jensen


def test_emas_follow_the_statistics_and_survive_edits() -> None:
    net = tiny_net()
    sch = Scheduler(GrowthConfig(rules=(), ema_decay=0.5, interval=1000))
    host = Host(net, [sch])
    sch.on_train_start(host)
    res = step_result(net, tokens(0))
    first = {k: v.clone() for k, v in res.output.stats.items()}
    sch.on_step_end(host, 1, res)  # the first statistics replace the initial EMAs
    res = step_result(net, tokens(1))
    sch.on_step_end(host, 2, res)
    sch._flush(net)
    expect = 0.5 * first["gate_mean"] + 0.5 * res.output.stats["gate_mean"]
    assert torch.allclose(net.tissue.gate_ema, expect)
    fe = free_energy({**res.output.stats, "wiring": wiring_cost(net.tissue)}, sch.weights)
    f1 = free_energy({**first, "wiring": wiring_cost(net.tissue)}, sch.weights)
    assert torch.allclose(net.tissue.fe_ema, 0.5 * f1 + 0.5 * fe, atol=1e-6)

    mother = int(net.tissue.cell_id[net.tissue.role == HIDDEN][0])
    r = net.row_of(mother)
    fe_mother, gate_mother = float(net.tissue.fe_ema[r]), float(net.tissue.gate_ema[r])
    edit = host.apply_edit(split_edit(net, mother))
    for d in edit.info["new_cells"]:  # daughters inherit
        assert float(net.tissue.fe_ema[net.row_of(d)]) == pytest.approx(fe_mother)
        assert float(net.tissue.gate_ema[net.row_of(d)]) == pytest.approx(gate_mother)
    assert sch.stats.ema["fe_ema"].shape == (net.tissue.num_nodes,)
    victim = edit.info["new_cells"][0]
    host.apply_edit(remove_edit(net, victim))  # the dead are dropped
    assert victim not in net.cell_ids()
    assert net.tissue.fe_ema.shape == (net.tissue.num_nodes,)
    sch.on_step_end(
        host, 3, step_result(net, tokens(2))
    )  # EMAs keep folding in on the new topology
    assert sch.stats.ema["gate_ema"].shape == (net.tissue.num_nodes,)


# ----------------------------------------------------------------- training extras
def test_gate_penalty_is_on_by_default_and_weighs_higher_levels_more() -> None:
    from morpho.trainer import gate_penalty

    assert TrainConfig().gate_l1 > 0
    net = tiny_net()
    act = net.run(tokens(0)).gate_activity
    (grad,) = torch.autograd.grad(gate_penalty(net, act), act)
    level = net.tissue.level.float()
    assert torch.allclose(grad, (level + 1) / (level.max() + 1) / level.numel())


def test_demand_weight_drives_gates_from_the_cells_above() -> None:
    x = tokens(0)
    gates = {}
    for w in (0.0, 1.0, 3.0):
        net = tiny_net(demand_weight=w)
        gates[w] = net.run(x).stats["gate_mean"]
    top = net.tissue.role == OUTPUT  # they feed no cell: no demand
    assert torch.equal(gates[0.0][top], gates[3.0][top])
    fed = ~top
    assert bool((gates[1.0][fed] > gates[0.0][fed]).all())  # demand > 0 opens gates
    assert bool((gates[3.0][fed] > gates[1.0][fed]).all())


def test_demand_is_the_strongest_fed_cells_gate_ema() -> None:
    net = tiny_net(demand_weight=2.0)
    t = net.tissue
    t.gate_ema = torch.rand(t.num_nodes)
    s = net.banks["strength"].detach().abs()
    demand = net.top_down_demand()
    for a in range(t.num_nodes):
        out = (t.edge_index[0] == a).nonzero().flatten()
        expected = (
            0.0
            if out.numel() == 0
            else float(2.0 * (s[out] * t.gate_ema[t.edge_index[1, out]]).max() / s[out].max())
        )
        assert abs(float(demand[a]) - expected) < 1e-6
