"""Laws of the asymmetric split (``unequal_split_edit``): the split laws at any share.

* function preserved (noise 0) at shares 0, 0.3 and 1, for input, hidden and output cells;
* optimizer state: each row, by stable id, equals the pre-edit row scaled by
  ``share ** order`` (daughter A) or ``(1 - share) ** order`` (daughter B) on outgoing
  strengths and ``split="share"`` banks, unchanged elsewhere; continuing it equals a fresh
  optimizer of the same kind given those numbers (the reference law of test_surgery);
* tissue-field initialisers reach daughter B only; bad shares and unknown fields are refused
  and leave the network untouched.
"""

from __future__ import annotations

import pytest
import torch
from conftest import (
    CELL_TYPES_UNDER_TEST,
    assert_invariants,
    cell_of,
    make_optimizer,
    tiny_net,
    tokens,
    train,
)
from test_surgery import LAW_OPTIMIZERS, Key, reference_law

from morpho.apply import split_unequal
from morpho.tissue import HIDDEN, INPUT, OUTPUT


@pytest.mark.parametrize("cell_type", CELL_TYPES_UNDER_TEST)
@pytest.mark.parametrize("share", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("role", [INPUT, HIDDEN, OUTPUT])
def test_unequal_split_preserves_function(role: int, share: float, cell_type: str) -> None:
    net = tiny_net(cell_type=cell_type)
    opt = make_optimizer("adamw", net)
    train(net, opt, 2)
    x = tokens(7, batch=3, seq_len=12)
    with torch.no_grad():
        before = net(x)
    edit = split_unequal(net, cell_of(net, role, 0), optimizer=opt, share=share)
    assert edit.kind == "split" and edit.info["share"] == share
    with torch.no_grad():
        torch.testing.assert_close(net(x), before, rtol=1e-5, atol=1e-5)
    assert_invariants(net, opt)


def _unequal(net, opt, share: float):
    mother = cell_of(net, HIDDEN, 1)
    a, b = split_unequal(net, mother, optimizer=opt, share=share).info["new_cells"]
    part = {a: share, b: 1.0 - share}
    as_mother = lambda c: mother if c in part else c  # noqa: E731

    def origin(name: str, key: Key) -> tuple[Key, float]:
        if name == "strength":
            src, dst = key
            return (as_mother(src), as_mother(dst)), part.get(src, 1.0)
        shared = key in part and net.bank_specs[name].split == "share"
        return as_mother(key), part[key] if shared else 1.0

    return origin


@pytest.mark.parametrize("cell_type", CELL_TYPES_UNDER_TEST)
@pytest.mark.parametrize("share", [1.0, 0.75])  # exact in binary: scale**2 too
@pytest.mark.parametrize("opt_name", LAW_OPTIMIZERS)
def test_unequal_split_state_equals_a_fresh_optimizer_given_the_same_numbers(
    opt_name: str, share: float, cell_type: str
) -> None:
    reference_law(cell_type, opt_name, lambda net, opt: _unequal(net, opt, share))


def test_full_share_leaves_b_silent_with_zero_moments() -> None:
    """share=1: B's outgoing strengths and readout are 0 and so are their Adam moments."""
    net = tiny_net()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    train(net, opt, 3)
    mother = cell_of(net, HIDDEN, 0)
    _, b = split_unequal(net, mother, optimizer=opt, share=1.0).info["new_cells"]
    out_b = net.tissue.edge_index[0] == net.row_of(b)
    s = net.banks["strength"]
    assert bool(out_b.any()) and bool((s[out_b] == 0).all())
    for key in ("exp_avg", "exp_avg_sq"):
        assert bool((opt.state[s][key][out_b] == 0).all()), key


def test_fields_reach_daughter_b_only() -> None:
    net = tiny_net()
    net.tissue.viscosity = torch.full((net.tissue.num_nodes,), 5.0)
    mother = cell_of(net, HIDDEN, 2)
    a, b = split_unequal(net, mother, fields={"viscosity": 0.0, "task": 4}).info["new_cells"]
    t = net.tissue
    assert float(t.viscosity[net.row_of(a)]) == 5.0 and float(t.viscosity[net.row_of(b)]) == 0.0
    assert int(t.task[net.row_of(b)]) == 4 and int(t.task[net.row_of(a)]) == 0
    assert float(t.viscosity.sum()) == 5.0 * (t.num_nodes - 1)


@pytest.mark.parametrize(
    "kwargs,match",
    [({"share": 1.5}, "share must be in"), ({"fields": {"nonsense": 1.0}}, "unknown cell field")],
)
def test_bad_share_or_field_is_refused_and_changes_nothing(kwargs, match: str) -> None:
    net = tiny_net()
    ids, params = net.cell_ids(), [p.detach().clone() for p in net.parameters()]
    with pytest.raises(ValueError, match=match):
        split_unequal(net, cell_of(net, HIDDEN, 0), **kwargs)
    assert net.cell_ids() == ids
    assert all(torch.equal(p, q) for p, q in zip(net.parameters(), params, strict=True))
