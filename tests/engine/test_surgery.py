"""Laws of optimizer surgery (DESIGN §2 "Edit"): state rows follow their parameter rows.

Expected values are computed from *stable ids* (cell_id, the edge's end cells, the lineage
of a split or an insert), the bank declarations of the cell type and the state as it was
before the edit, never from the engine's own row maps. For AdamW, SGD with momentum,
centered RMSprop with momentum and Adagrad, two param groups, each cell type under test,
and split / insert / remove / connect:

* surviving rows keep their moments; scalar states (``step``) are kept;
* split daughters: the moments of outgoing strengths and of ``split="share"`` banks (the
  readout) are scaled like the weight (x0.5) for first moments and by its square (x0.25)
  for second moments; a cell born in series has zero moments in its ``series="zero"``
  banks and its parent's elsewhere;
* fresh rows are zero, except Adagrad's ``sum`` = ``initial_accumulator_value``;
* reference: the migrated optimizer, continued, equals a fresh optimizer of the same kind
  whose state was built by hand from those numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

import pytest
import torch
from conftest import (
    CELL_TYPES_UNDER_TEST,
    assert_invariants,
    cell_of,
    make_optimizer,
    param_groups,
    tiny_net,
    train,
)
from torch import Tensor

import morpho
from morpho.network import Network
from morpho.surgery import RowMap, migrate_optimizer_state, remap_parameter, remap_rows
from morpho.tissue import HIDDEN, INPUT, OUTPUT

# the moment order of each state the law optimizers keep: it scales like the weight**order
ORDER = {
    "exp_avg": 1,  # AdamW
    "exp_avg_sq": 2,
    "momentum_buffer": 1,  # SGD, RMSprop with momentum
    "grad_avg": 1,  # centered RMSprop
    "square_avg": 2,
    "sum": 2,  # Adagrad
}
LAW_OPTIMIZERS = ("adamw", "sgd-momentum", "rmsprop-centered-momentum", "adagrad")
Key = Hashable  # a cell_id, or the (source, target) cell_ids of an edge


def _keys(net, name: str) -> list[Key]:
    """Stable key of every row of bank ``name``: cell ids, or edge ends, in row order."""
    if name == "strength":
        return [tuple(e) for e in net.tissue.cell_id[net.tissue.edge_index].T.tolist()]
    return net.cell_ids()


def _state_by_id(net, opt) -> dict[str, tuple[dict[Key, dict[str, Tensor]], dict[str, Tensor]]]:
    """Per bank: (stable key -> {moment: row clone}, {scalar state: clone})."""
    out = {}
    for name, bank in net.banks.items():
        state = opt.state[bank]
        moments = [m for m, v in state.items() if v.dim() and v.shape == bank.shape]
        assert set(moments) <= set(ORDER), f"unexpected state {moments} of {name}"
        rows = {
            k: {m: state[m][i].clone() for m in moments} for i, k in enumerate(_keys(net, name))
        }
        out[name] = rows, {m: v.clone() for m, v in state.items() if m not in moments}
    return out


Origin = Callable[[str, Key], tuple[Key | None, float]]


def _expected(net, opt, before, origin: Origin) -> dict[str, dict[Key, dict[str, Tensor]]]:
    """The state rows after an edit, from the rows before and each new row's origin:
    ``(old key, scale)`` → ``scale ** order · old row``; ``(None, _)`` → a fresh row (0, or
    Adagrad's ``initial_accumulator_value``)."""
    fill = {"sum": opt.defaults.get("initial_accumulator_value", 0.0)}
    out = {}
    for name in net.banks:
        rows, _ = before[name]
        moments = next(iter(rows.values())).keys()
        out[name] = {}
        for key in _keys(net, name):
            old, scale = origin(name, key)
            out[name][key] = {
                m: torch.full_like(next(iter(rows.values()))[m], fill.get(m, 0.0))
                if old is None
                else scale ** ORDER[m] * rows[old][m]
                for m in moments
            }
    return out


def _split(net, opt):
    mother = cell_of(net, HIDDEN, 1)
    daughters = set(morpho.split(net, mother, optimizer=opt).info["new_cells"])
    as_mother = lambda c: mother if c in daughters else c  # noqa: E731

    def origin(name: str, key: Key) -> tuple[Key, float]:
        if name == "strength":
            src, dst = key
            return (as_mother(src), as_mother(dst)), 0.5 if src in daughters else 1.0
        share = key in daughters and net.bank_specs[name].split == "share"
        return as_mother(key), 0.5 if share else 1.0

    return origin


def _split_output(net, opt):
    mother = cell_of(net, OUTPUT, 0)
    daughters = set(morpho.split(net, mother, optimizer=opt).info["new_cells"])

    def origin(name: str, key: Key) -> tuple[Key, float]:
        if name == "strength":
            return (key[0], mother if key[1] in daughters else key[1]), 1.0
        share = key in daughters and net.bank_specs[name].split == "share"
        return (mother if key in daughters else key), 0.5 if share else 1.0

    return origin


def _insert(net, opt):
    parent = cell_of(net, HIDDEN, 0)
    (child,) = morpho.insert(net, parent, optimizer=opt).info["new_cells"]

    def origin(name: str, key: Key) -> tuple[Key | None, float]:
        if name == "strength":
            src, dst = key
            if (src, dst) == (parent, child):
                return None, 1.0  # the new edge a -> c
            return ((parent if src == child else src), dst), 1.0  # c took over a's outputs
        series = net.bank_specs[name].series
        if key != child:
            return key, 1.0
        return (None, 1.0) if series == "fresh" else (parent, 0.0 if series == "zero" else 1.0)

    return origin


def _remove_with_bridges(net, opt):
    old_edges = set(_keys(net, "strength"))
    morpho.remove(net, cell_of(net, HIDDEN, 0), optimizer=opt, bridge=True)
    return lambda name, key: (key if name != "strength" or key in old_edges else None, 1.0)


def _connect(net, opt):
    old_edges = set(_keys(net, "strength"))
    morpho.connect(net, cell_of(net, INPUT, 0), cell_of(net, OUTPUT, 1), optimizer=opt)
    return lambda name, key: (key if name != "strength" or key in old_edges else None, 1.0)


EDITS: dict[str, Callable] = {
    "split": _split,
    "split-output": _split_output,
    "insert": _insert,
    "remove-bridge": _remove_with_bridges,
    "connect": _connect,
}


LAW_CASES = [
    (edit, opt_name, cell_type)
    for edit in sorted(EDITS)
    for opt_name in LAW_OPTIMIZERS
    for cell_type in CELL_TYPES_UNDER_TEST
] + [("insert", opt_name, "gated-fresh") for opt_name in LAW_OPTIMIZERS]


def reference_law(cell_type: str, opt_name: str, edit: Callable[..., Origin]) -> None:
    """The optimizer-state reference law for one edit (``edit(net, opt)`` applies it and
    returns where each new row came from): after training, the migrated state equals, row
    by stable id, the pre-edit state scaled by the moment order, scalars kept; and
    continuing it equals a fresh optimizer of the same kind given exactly those numbers."""
    net = tiny_net(cell_type=cell_type)
    opt = make_optimizer(opt_name, net)
    train(net, opt, 3)
    before = _state_by_id(net, opt)
    others = {n: dict(opt.state[p]) for n, p in net.named_parameters() if "banks." not in n}
    origin = edit(net, opt)
    expected = _expected(net, opt, before, origin)
    after = _state_by_id(net, opt)
    for name, (rows, scalars) in after.items():
        assert rows.keys() == expected[name].keys(), name
        for key, moments in rows.items():
            for m, value in moments.items():
                assert torch.equal(value, expected[name][key][m]), f"{name}[{key}].{m}"
        assert scalars.keys() == before[name][1].keys()
        assert all(torch.equal(v, before[name][1][k]) for k, v in scalars.items()), name

    ref = Network(net.cfg, tissue=net.tissue.clone())  # the same topology and numbers
    ref.load_state_dict(net.state_dict())
    ref_opt = make_optimizer(opt_name, ref)
    for name, p in ref.named_parameters():
        bank = name.removeprefix("banks.")
        if bank in after:
            rows = [expected[bank][k] for k in _keys(ref, bank)]
            state = {m: torch.stack([r[m] for r in rows]) for m in rows[0]}
            state.update({k: v.clone() for k, v in after[bank][1].items()})
        else:
            state = {k: v.clone() for k, v in others[name].items()}
        ref_opt.state[p] = state
    train(net, opt, 4, seed=20)
    train(ref, ref_opt, 4, seed=20)
    for (name, p), q in zip(net.named_parameters(), ref.parameters(), strict=True):
        assert torch.equal(p, q), f"parameter {name} differs from the reference optimizer"
        for key, value in opt.state[p].items():
            assert torch.equal(value, ref_opt.state[q][key]), f"{name}.{key}"
    assert_invariants(net, opt)


@pytest.mark.parametrize("edit,opt_name,cell_type", LAW_CASES)
def test_migrated_state_equals_a_fresh_optimizer_given_the_same_numbers(
    edit: str, opt_name: str, cell_type: str
) -> None:
    """Reference law, for each edit, optimizer (two param groups) and cell type: the
    migrated state equals, row by stable id, the pre-edit state scaled by the moment order
    (fresh rows zero or Adagrad's fill, scalars kept); and continuing the migrated optimizer
    equals a fresh one of the same kind given exactly those numbers."""
    reference_law(cell_type, opt_name, EDITS[edit])


@pytest.mark.parametrize("cell_type", CELL_TYPES_UNDER_TEST)
def test_remove_keeps_state_rows_of_survivors(cell_type: str) -> None:
    net = tiny_net(cell_type=cell_type)
    opt = make_optimizer("adamw", net)
    train(net, opt, 3)
    before = _state_by_id(net, opt)
    morpho.remove(net, cell_of(net, HIDDEN, 1), optimizer=opt)
    for name, (rows, scalars) in _state_by_id(net, opt).items():
        assert torch.equal(scalars["step"], before[name][1]["step"]), f"step of {name}"
        assert len(rows) < len(before[name][0])
        for key, moments in rows.items():
            for m, value in moments.items():
                assert torch.equal(value, before[name][0][key][m]), f"{name}[{key}].{m}"


@pytest.mark.parametrize("cell_type", CELL_TYPES_UNDER_TEST)
def test_split_parameters_follow_the_declared_law(cell_type: str) -> None:
    """Daughters copy the rows of ``split="copy"`` banks, halve those of ``"share"`` banks
    (the readout) and every outgoing strength; incoming strengths are copied."""
    net = tiny_net(cell_type=cell_type)
    train(net, make_optimizer("adamw", net), 3)
    mother = cell_of(net, HIDDEN, 0)
    strength = dict(zip(_keys(net, "strength"), net.banks["strength"].tolist(), strict=True))
    rows = {k: v[net.row_of(mother)].detach().clone() for k, v in net.banks.items()}
    daughters = set(morpho.split(net, mother, noise=0.0).info["new_cells"])
    for name, spec in net.bank_specs.items():
        scale = 0.5 if spec.split == "share" else 1.0
        for d in daughters:
            assert torch.equal(net.banks[name][net.row_of(d)], scale * rows[name]), name
    for (src, dst), s in zip(_keys(net, "strength"), net.banks["strength"].tolist(), strict=True):
        if src in daughters:
            assert s == 0.5 * strength[(mother, dst)]
        elif dst in daughters:
            assert s == strength[(src, mother)]


def test_adagrad_fresh_rows_get_the_initial_accumulator() -> None:
    net = tiny_net()
    opt = torch.optim.Adagrad(param_groups(net), lr=1e-2, initial_accumulator_value=0.37)
    train(net, opt, 2)
    old_sum = opt.state[net.banks["strength"]]["sum"].clone()
    assert bool((old_sum > 0.37).any())
    edit = morpho.connect(net, cell_of(net, INPUT, 1), cell_of(net, OUTPUT, 0), optimizer=opt)
    new_sum = opt.state[net.banks["strength"]]["sum"]
    row = net.edge_row_of(edit.info["new_edges"][0])
    assert float(new_sum[row]) == pytest.approx(0.37)
    assert torch.equal(torch.cat([new_sum[:row], new_sum[row + 1 :]]), old_sum)
    train(net, opt, 1, seed=5)  # and Adagrad accepts the migrated state


def test_unknown_state_key_is_refused_with_the_known_keys() -> None:
    p = torch.nn.Parameter(torch.zeros(3, 2))
    opt = torch.optim.SGD([p], lr=0.1)
    opt.state[p] = {"mystery": torch.ones(3, 2)}
    new = torch.nn.Parameter(torch.zeros(2, 2))
    with pytest.raises(ValueError, match="'mystery'.*expected one of: momentum_buffer"):
        migrate_optimizer_state(opt, p, new, RowMap.build(torch.tensor([0, 2])))


def test_remap_rows_law() -> None:
    x = torch.arange(12.0).view(4, 3)
    rmap = RowMap.build(torch.tensor([2, -1, 0, 0]), scale=torch.tensor([1.0, 1.0, 0.5, 2.0]))
    expected = torch.stack([x[2], torch.full((3,), 7.0), 0.25 * x[0], 4.0 * x[0]])
    torch.testing.assert_close(remap_rows(x, rmap, power=2, fill=7.0), expected)
    torch.testing.assert_close(remap_rows(x, rmap, power=0)[[0, 2, 3]], x[[2, 0, 0]])
    per_row = torch.tensor([0.0, 5.0, 0.0, 0.0])  # one value per row, broadcast
    torch.testing.assert_close(remap_rows(x, rmap, power=0, fill=per_row)[1], torch.full((3,), 5.0))
    rows = -torch.arange(12.0).view(4, 3)  # whole rows (a fresh initialisation)
    torch.testing.assert_close(remap_parameter(x, RowMap.build(rmap.src, fill=rows))[1], rows[1])


def test_migration_moves_state_to_the_new_parameter_in_place_of_the_old() -> None:
    net = tiny_net()
    opt = make_optimizer("adam", net)
    train(net, opt, 1)
    positions = {
        id(p): (gi, pi) for gi, g in enumerate(opt.param_groups) for pi, p in enumerate(g["params"])
    }
    where = {name: positions[id(p)] for name, p in net.named_parameters()}
    hyper = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
    morpho.split(net, cell_of(net, HIDDEN, 0), optimizer=opt)
    for name, p in net.named_parameters():
        gi, pi = where[name]
        assert opt.param_groups[gi]["params"][pi] is p, f"{name} moved in the param groups"
        assert p in opt.state
    assert hyper == [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
    assert len(opt.state) == len(list(net.parameters()))
