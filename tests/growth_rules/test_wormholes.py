"""Wormholes: long-range edges the dendrite rule may grow, charged by their length.

Laws: with wormholes off no proposal is ever longer than ``max_distance``, however hard the
gradient pulls; with them on a far pair is proposed (and flagged) exactly when its gradient
pays ``wiring_cost · length`` (plus any ``wormhole_cost`` beyond ``max_distance``); the
scheduler then grows a long edge in a spread-out tissue, and none when they are off.
"""

from __future__ import annotations

import pytest
import torch
from conftest import Host, step_result, tiny_net, tokens, view

from morpho.growth.config import GrowthConfig
from morpho.growth.scheduler import Scheduler
from morpho.growth_rules.dendrite import Dendrite, wormhole_edges
from morpho.tissue import seed_tissue

A, B = 0, 6  # input (level 0) → a level-2 cell: not an edge of the dense seed


def far_tissue(distance: float = 20.0):  # type: ignore[no-untyped-def]
    """The (2, 3, 3, 2) seed tissue with cell ``B`` moved ``distance`` away from cell ``A``."""
    t = seed_tissue((2, 3, 3, 2))
    t.pos[B] = t.pos[A] + torch.tensor([distance, 0.0, 0.0])
    return t


def pulled(t, value: float) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """(N, N) gradients: 1 everywhere (the median edge), ``value`` on the pair A → B."""
    grad = torch.ones(t.num_nodes, t.num_nodes)
    grad[A, B] = value
    return grad


def length(t, a: int = A, b: int = B) -> float:  # type: ignore[no-untyped-def]
    return float((t.pos[a] - t.pos[b]).norm())


def test_without_wormholes_no_proposal_is_ever_longer_than_max_distance() -> None:
    t = far_tissue()
    grad = torch.rand(t.num_nodes, t.num_nodes, generator=torch.Generator().manual_seed(0))
    grad[A, B] = 1e9  # the far pair pulls hardest of all
    rule = Dendrite(max_distance=4.0, threshold=-1e9, max_new=t.num_nodes**2)
    events = rule.propose(view(t, grad=grad))
    assert events, "the permissive rule proposes every local candidate"
    assert all(e.stats["length"] <= 4.0 and e.stats["wormhole"] == 0.0 for e in events)
    assert all("wormhole" not in e.reason for e in events)
    assert (A, B) not in [e.cells for e in events]


def test_a_far_pair_that_pays_for_its_length_grows_as_a_wormhole() -> None:
    t = far_tissue()
    d = length(t)
    events = Dendrite(wormholes=True, wiring_cost=0.5, threshold=3.0).propose(
        view(t, grad=pulled(t, 100.0))
    )
    assert [(e.kind, e.cells) for e in events] == [("connect", (A, B))]
    ev = events[0]
    assert ev.score == pytest.approx(100.0 / 1.0 - 0.5 * d)  # grad / median − cost · length
    assert ev.stats["wormhole"] == 1.0 and ev.stats["length"] == pytest.approx(d) and d > 4.0
    assert ev.reason.startswith("wormhole")


def test_a_far_pair_whose_gradient_does_not_cover_the_length_is_not_grown() -> None:
    t = far_tissue(distance=20.0)
    rule = Dendrite(wormholes=True, wiring_cost=0.5, threshold=3.0)
    d = length(t)
    short = 0.5 * d + 3.0 - 0.1  # just below the bar: grad / median − cost · d < threshold
    assert rule.propose(view(t, grad=pulled(t, short))) == []
    enough = 0.5 * d + 3.0 + 0.1
    assert [e.cells for e in rule.propose(view(t, grad=pulled(t, enough)))] == [(A, B)]


def test_wormhole_cost_charges_only_the_length_beyond_max_distance() -> None:
    t = far_tissue()
    d = length(t)
    rule = Dendrite(wormholes=True, wiring_cost=0.5, wormhole_cost=2.0, threshold=3.0)
    (ev,) = rule.propose(view(t, grad=pulled(t, 100.0)))
    assert ev.score == pytest.approx(100.0 - 0.5 * d - 2.0 * (d - 4.0))
    assert rule.propose(view(t, grad=pulled(t, 0.5 * d + 3.0 + 0.1))) == []  # wiring alone: no


def test_local_edges_score_alike_with_wormholes_on_or_off() -> None:
    """Switching wormholes on changes nothing for a pair within ``max_distance``."""
    t = seed_tissue((2, 3, 3, 2))
    grad = pulled(t, 10.0)
    kw = {"max_distance": 10.0, "wiring_cost": 0.1, "threshold": 2.0, "wormhole_cost": 5.0}
    off, on = (
        Dendrite(**kw).propose(view(t, grad=grad)),
        Dendrite(wormholes=True, **kw).propose(view(t, grad=grad)),
    )
    assert off == on and off[0].stats["wormhole"] == 0.0


def test_wormhole_edges_flags_the_edges_longer_than_max_distance() -> None:
    t = seed_tissue((2, 3, 3, 2))
    assert not wormhole_edges(t, 4.0).any()  # the seed is local
    t.pos[B] += torch.tensor([0.0, 50.0, 0.0])  # every edge at B becomes a jump
    src, dst = t.edge_index
    assert torch.equal(wormhole_edges(t, 4.0), (src == B) | (dst == B))
    assert wormhole_edges(t, 4.0).shape == (t.edge_index.shape[1],)


def test_config_table_switches_wormholes_on_and_rejects_negative_costs() -> None:
    cfg = GrowthConfig.from_dict({"dendrite": {"wormholes": True, "wormhole_cost": 0.1}})
    assert cfg.to_dict()["dendrite"]["wormholes"] is True
    with pytest.raises(ValueError, match="growth.dendrite.wormhole_cost must be >= 0"):
        Dendrite(wormhole_cost=-1.0)


@pytest.mark.parametrize("wormholes", [True, False])
def test_the_scheduler_grows_a_wormhole_in_a_spread_out_tissue(wormholes: bool) -> None:
    """Cells 10x further apart than the seed: every candidate is beyond max_distance."""
    net = tiny_net()
    net.tissue.pos = net.tissue.pos * 10.0
    rule = Dendrite(max_distance=4.0, wiring_cost=1e-3, threshold=0.0, wormholes=wormholes)
    sch = Scheduler(GrowthConfig(rules=(), min_cells=1), rules={"dendrite": rule})
    host = Host(net, [sch])
    host.step = 99  # type: ignore[attr-defined]  # the trainer's step before the check
    sch.on_train_start(host)
    x = tokens(0, seq_len=9)
    res = step_result(net, x[:, :-1], capture=True)
    ce = torch.nn.functional.cross_entropy(res.output.logits.flatten(0, 1), x[:, 1:].flatten())
    (ce + 0.1 * res.output.aux_loss).backward()
    n_edges = net.tissue.edge_index.shape[1]
    records = sch.check(host, 100, res)
    grown = [r for r in records if r["kind"] == "connect"]
    if not wormholes:
        assert grown == [] and net.tissue.edge_index.shape[1] == n_edges
        return
    assert len(grown) == 1 and grown[0]["stats"]["wormhole"] == 1.0
    new = net.tissue.edge_id == grown[0]["new_edges"][0]
    assert wormhole_edges(net.tissue, 4.0)[new].item()
    assert grown[0]["stats"]["length"] > 4.0
