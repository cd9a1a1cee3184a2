"""Mitosis with ``antithetic = true``: the event asks for a ``±δ`` split, and the split the
dispatch builds from it gives the daughters rows that sum to twice the mother's."""

from __future__ import annotations

import torch
from conftest import make_optimizer, tiny_net, train, view

from morpho.apply import apply_edit
from morpho.growth.dispatch import edit_for
from morpho.growth_rules.mitosis import Mitosis
from morpho.network import EDGE_BANKS
from morpho.tissue import HIDDEN


def test_antithetic_mitosis_splits_into_plus_and_minus_delta() -> None:
    v = view()
    r = int((v.tissue.role == HIDDEN).nonzero()[1])
    v.cell_history["fe_ema"][r] = torch.tensor([0.9, 0.9, 0.95, 1.0])
    (event,) = Mitosis(patience=3, noise=0.1, antithetic=True).propose(v)
    assert event.options == {"noise": 0.1, "antithetic": True}
    net = tiny_net(cell_type="wide")
    train(net, make_optimizer("adamw", net), 2)
    cid = int(net.tissue.cell_id[r])
    mother = {k: b[r].detach().clone() for k, b in net.banks.items() if k not in EDGE_BANKS}
    edit = apply_edit(net, edit_for(net, event.__class__(**{**event.__dict__, "cells": (cid,)})))
    a, b = (net.row_of(c) for c in edit.info["new_cells"])
    for k, m in mother.items():
        if net.bank_specs[k].split == "copy":
            torch.testing.assert_close(net.banks[k][a] + net.banks[k][b], 2 * m)
            assert not torch.equal(net.banks[k][a], net.banks[k][b]) or not bool(m.any())
