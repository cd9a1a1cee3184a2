"""Laws of optimizer surgery (DESIGN §2 "Edit"): state rows follow their parameter rows.

Expected values are computed from *stable ids* (cell_id, edge_id, the lineage of a split)
and the state as it was before the edit, never from the engine's own row maps:

* surviving rows keep their Adam/AdamW moments; ``step`` is kept;
* split daughters: moments of outgoing-edge strengths and readout weights are scaled like
  the weight (x0.5) for ``exp_avg`` and by its square (x0.25) for ``exp_avg_sq``;
* fresh rows are zero, except Adagrad's ``sum`` = ``initial_accumulator_value``;
* reference: a migrated AdamW continued after a connect equals a fresh AdamW whose state
  was built by hand from the pre-edit numbers.
"""

from __future__ import annotations

import pytest
import torch
from conftest import cell_of, make_optimizer, param_groups, tiny_net, train

import morpho
from morpho.surgery import RowMap, migrate_optimizer_state, remap_rows
from morpho.tissue import HIDDEN, INPUT, OUTPUT

MOMENTS = ("exp_avg", "exp_avg_sq")


def _edge_keys(net) -> list[tuple[int, int]]:
    """(source cell_id, target cell_id) of every edge, in row order."""
    return [tuple(e) for e in net.tissue.cell_id[net.tissue.edge_index].T.tolist()]


def _state_by_id(net, opt) -> dict[str, dict]:
    """Per bank: stable key (cell_id or edge ends) -> {state key: row clone}, plus scalars."""
    out = {}
    for name, bank in net.banks.items():
        keys = _edge_keys(net) if name == "strength" else net.cell_ids()
        state = opt.state[bank]
        out[name] = {k: {m: state[m][i].clone() for m in MOMENTS} for i, k in enumerate(keys)}
        out[name]["step"] = state["step"].clone()
    return out


@pytest.fixture
def trained():
    net = tiny_net()
    opt = make_optimizer("adamw", net)
    train(net, opt, 3)
    return net, opt


def test_remove_keeps_state_rows_of_survivors(trained) -> None:
    net, opt = trained
    before = _state_by_id(net, opt)
    morpho.remove(net, cell_of(net, HIDDEN, 1), optimizer=opt)
    after = _state_by_id(net, opt)
    for name, rows in after.items():
        assert torch.equal(rows.pop("step"), before[name]["step"]), f"step of {name}"
        assert len(rows) < len(before[name]) - 1
        for key, moments in rows.items():
            for m in MOMENTS:
                assert torch.equal(moments[m], before[name][key][m]), f"{name}[{key}].{m}"


@pytest.mark.parametrize("role", [INPUT, HIDDEN, OUTPUT])
def test_split_scales_moments_of_daughters_outgoing_edges(trained, role: int) -> None:
    net, opt = trained
    mother = cell_of(net, role, 1)
    before = _state_by_id(net, opt)
    edit = morpho.split(net, mother, optimizer=opt, noise=0.0)
    daughters = set(edit.info["new_cells"])
    after = _state_by_id(net, opt)
    as_mother = lambda c: mother if c in daughters else c  # noqa: E731

    for name, rows in after.items():
        assert torch.equal(rows.pop("step"), before[name]["step"])
        for key, moments in rows.items():
            if name == "strength":
                src, dst = key
                old = before[name][(as_mother(src), as_mother(dst))]
                scale = 0.5 if src in daughters else 1.0  # outgoing edges are halved
            else:
                old = before[name][as_mother(key)]
                scale = 0.5 if name == "readout" and key in daughters else 1.0
            torch.testing.assert_close(moments["exp_avg"], scale * old["exp_avg"], rtol=0, atol=0)
            torch.testing.assert_close(
                moments["exp_avg_sq"], scale**2 * old["exp_avg_sq"], rtol=0, atol=0
            )
    n_out = sum(1 for src, _ in after["strength"] if src in daughters)
    if role != OUTPUT:
        assert n_out > 0, "the split cell should have outgoing edges"


def test_split_parameters_follow_the_same_law(trained) -> None:
    net, opt = trained
    mother = cell_of(net, HIDDEN, 0)
    strength = dict(zip(_edge_keys(net), net.banks["strength"].tolist(), strict=True))
    w = net.banks["w_qkv"][net.row_of(mother)].detach().clone()
    edit = morpho.split(net, mother, optimizer=opt, noise=0.0)
    daughters = set(edit.info["new_cells"])
    for d in daughters:
        assert torch.equal(net.banks["w_qkv"][net.row_of(d)], w)
    for (src, dst), s in zip(_edge_keys(net), net.banks["strength"].tolist(), strict=True):
        if src in daughters:
            assert s == pytest.approx(0.5 * strength[(mother, dst)], rel=0, abs=0)
        elif dst in daughters:
            assert s == strength[(src, mother)]


def test_connect_gives_the_new_edge_zero_moments(trained) -> None:
    net, opt = trained
    before = _state_by_id(net, opt)
    src, dst = cell_of(net, INPUT, 0), cell_of(net, OUTPUT, 0)
    morpho.connect(net, src, dst, optimizer=opt)
    after = _state_by_id(net, opt)["strength"]
    assert torch.equal(after.pop("step"), before["strength"]["step"])
    new = after.pop((src, dst))
    assert all(float(new[m]) == 0.0 for m in MOMENTS)
    for key, moments in after.items():
        assert all(torch.equal(moments[m], before["strength"][key][m]) for m in MOMENTS)


def test_remove_with_bridge_gives_bridges_zero_moments(trained) -> None:
    net, opt = trained
    before = _state_by_id(net, opt)["strength"]
    edit = morpho.remove(net, cell_of(net, HIDDEN, 0), optimizer=opt, bridge=True)
    assert edit.info["new_edges"]
    after = _state_by_id(net, opt)["strength"]
    for key, moments in after.items():
        if key == "step":
            continue
        expected = before.get(key, {m: torch.tensor(0.0) for m in MOMENTS})
        assert all(torch.equal(moments[m], expected[m]) for m in MOMENTS), key


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


def test_migrated_adamw_equals_a_hand_built_fresh_adamw(trained) -> None:
    """Reference law: continue the migrated optimizer vs a new AdamW given the same numbers."""
    net, opt = trained
    pre = {name: {k: v.clone() for k, v in opt.state[p].items()} for name, p in net.banks.items()}
    pre_other = {
        n: {k: v.clone() for k, v in opt.state[p].items()}
        for n, p in net.named_parameters()
        if not n.startswith("banks.")
    }
    n_edges = net.tissue.edge_index.shape[1]
    edit = morpho.connect(net, cell_of(net, INPUT, 0), cell_of(net, OUTPUT, 1), optimizer=opt)
    row = net.edge_row_of(edit.info["new_edges"][0])
    assert row == n_edges  # a connect appends its edge

    ref = tiny_net()  # the same topology, then the same numbers
    morpho.apply_edit(ref, morpho.connect_edit(ref, *edit.info["cells"]))
    ref.load_state_dict(net.state_dict())
    ref_opt = torch.optim.AdamW(param_groups(ref), lr=3e-3, betas=(0.9, 0.99))
    for name, p in ref.named_parameters():
        bank = name.removeprefix("banks.")
        if name.startswith("banks."):
            state = {"step": pre[bank]["step"].clone()}
            for m in MOMENTS:
                old = pre[bank][m]
                state[m] = torch.cat([old, old.new_zeros(1)]) if bank == "strength" else old.clone()
        else:
            state = {k: v.clone() for k, v in pre_other[name].items()}
        ref_opt.state[p] = state

    train(net, opt, 4, seed=20)
    train(ref, ref_opt, 4, seed=20)
    for (name, p), q in zip(net.named_parameters(), ref.parameters(), strict=True):
        assert torch.equal(p, q), f"parameter {name} differs from the reference AdamW"
        for key in ("step", *MOMENTS):
            assert torch.equal(opt.state[p][key], ref_opt.state[q][key]), f"{name}.{key}"


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
