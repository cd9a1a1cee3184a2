"""GradMax widening (Evci et al. 2022; ``[growth.widen] init = "gradmax"``): new channels
read nothing, write along the largest gradient.

* the function is preserved at birth, with new write rows that are not zero;
* the new write rows equal the top-k left singular vectors of the gradient correlation
  ``M = Σ g x̂ᵀ`` computed by hand (``g`` by autograd at the cells' outputs, caught by a
  spy on the cell type, not by the engine's formula), scaled to the cell's mean write norm;
* ``widen`` with ``init = "gradmax"`` widens on its plateau with that fan-out; without the
  probe, not;
* a fan-out of the wrong shape, or for a cell type without ``w_write``, is refused.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from conftest import make_optimizer, tiny_net, tokens, train
from test_widen_rule import widen_view

from morpho.apply import apply_edit
from morpho.cells import rms_norm
from morpho.edits import widen_edit
from morpho.growth.gradmax import gradient_correlation
from morpho.growth_rules.widen import Widen

D_OLD, D_NEW = 8, 12


def _setup():
    torch.manual_seed(0)
    net = tiny_net(cell_type="wide", d_cell=D_OLD, n_heads=2)
    train(net, make_optimizer("adamw", net), 4)
    x = tokens(3, batch=4, seq_len=10)
    return net, (x[:, :-1], x[:, 1:])


def _hand_correlation(net, batch) -> torch.Tensor:
    """M per cell from a spy on ``forward_level``: the inputs it got, the outputs it gave."""
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    level = net.cell.forward_level

    def spy(banks, x, *args, **kwargs):
        out = level(banks, x, *args, **kwargs)
        seen.append((x, out.y))
        return out

    net.cell.forward_level = spy
    try:
        logits = net(batch[0])
    finally:
        del net.cell.forward_level
    ce = F.cross_entropy(logits.flatten(0, 1), batch[1].flatten())
    g = torch.autograd.grad(ce, [y for _, y in seen], allow_unused=True)
    pairs = zip(g, seen, strict=True)
    g = torch.cat([gi if gi is not None else torch.zeros_like(y) for gi, (_, y) in pairs])
    x = torch.cat([x for x, _ in seen]).detach()
    xhat = rms_norm(x) * net.banks["norm"].detach()[:, None, None]
    return torch.einsum("nbti,nbtj->nij", g, xhat)


def test_gradmax_widening_preserves_function_and_follows_the_top_singular_vectors() -> None:
    net, batch = _setup()
    probe = gradient_correlation(net, batch)
    assert probe is not None
    hand = _hand_correlation(net, batch)
    torch.testing.assert_close(probe["correlation"], hand, rtol=1e-4, atol=1e-6)
    k = D_NEW - D_OLD
    v = dataclasses.replace(
        widen_view([2.0, 1.5, 1.49, 1.48], d_cell=D_OLD), gradient_correlation=probe
    )
    v = dataclasses.replace(v, tissue=net.tissue.clone())
    (event,) = Widen(to=D_NEW, init="gradmax").propose(v)
    fanout = event.options["fanout"]
    old_write = net.banks["w_write"].detach().clone()
    with torch.no_grad():
        before = net(batch[0])
    apply_edit(net, widen_edit(net, D_NEW, fanout=fanout))
    with torch.no_grad():
        after = net(batch[0])
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-5)
    new_rows = net.banks["w_write"].detach()[:, D_OLD:]  # (N, k, D)
    u, _, _ = torch.linalg.svd(hand)
    norm = old_write.norm(dim=2).mean(1)
    for c in range(net.tissue.num_nodes):
        for j in range(k):
            want = norm[c] * u[c, :, j]
            got = new_rows[c, j]
            sign = torch.sign((got * want).sum())  # a singular vector's sign is arbitrary
            torch.testing.assert_close(got, sign * want, rtol=1e-3, atol=1e-5)
    assert bool(new_rows.abs().sum() > 0)


def test_rule_widens_with_the_gradmax_fanout_only_with_the_probe() -> None:
    v = widen_view([2.0, 1.5, 1.49, 1.48], d_cell=8)
    n = v.tissue.num_nodes
    u = torch.linalg.svd(torch.randn(n, 6, 6))[0]
    probe = {"directions": u, "write_norm": torch.full((n,), 2.0)}
    rule = Widen(to=12, patience=2, tolerance=0.02, init="gradmax", gradmax_scale=0.5)
    assert rule.needs_gradient_correlation and not Widen().needs_gradient_correlation
    (event,) = rule.propose(dataclasses.replace(v, gradient_correlation=probe))
    assert event.kind == "widen" and event.options["d_cell"] == 12
    torch.testing.assert_close(event.options["fanout"], 0.5 * 2.0 * u[:, :, :4].transpose(1, 2))
    assert rule.propose(v) == []  # no probe: no widening


def test_bad_fanout_is_refused() -> None:
    net, _ = _setup()
    with pytest.raises(ValueError, match="fanout has shape"):
        widen_edit(net, D_NEW, fanout=torch.zeros(1, 2, 3))
    thermo = tiny_net(cell_type="thermo")
    with pytest.raises(ValueError):
        widen_edit(thermo, 12, fanout=torch.zeros(10, 4, 8))
    with pytest.raises(ValueError, match="growth.widen.init must be one of zero, gradmax"):
        Widen(init="ones")
    with pytest.raises(ValueError, match="growth.widen.gradmax_scale must be > 0"):
        Widen(gradmax_scale=0)
