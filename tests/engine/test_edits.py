"""Laws of topology edits (DESIGN §2 invariants 1, 2 and 4; the refusals of 3).

Every law runs on each cell type under test (the thermodynamic cell and the simple gated
cell of conftest), so the edits depend on what a type declares, not on its bank names:

* an identity edit is invisible: training after it is bit-identical, parameters and
  optimizer state, for every supported ``torch.optim`` optimizer with two param groups;
* a split with ``noise=0``, an insert in series, a connect, and the removal of a cell no
  one listens to preserve the network function; noise breaks it;
* after random edit sequences with steps in between, the invariants hold and the
  optimizer holds exactly the module's parameters, each with state of its own shape;
* edits that would cut every input from every output, duplicate or downward edges are
  refused with ``ValueError`` and leave the network untouched.
"""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest
import torch
from conftest import (
    CELL_TYPES_UNDER_TEST,
    OPTIMIZERS,
    assert_invariants,
    cell_of,
    make_optimizer,
    reaches_output,
    tiny_net,
    tokens,
    train,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import morpho
from morpho.surgery import RowMap, migrate_optimizer_state, remap_parameter, remap_rows
from morpho.tissue import HIDDEN, INPUT, OUTPUT


def _state_items(opt: torch.optim.Optimizer) -> list[tuple[int, int, str, object]]:
    """Every state entry as (group, position, key, value), in param-group order."""
    out = []
    for gi, group in enumerate(opt.param_groups):
        for pi, p in enumerate(group["params"]):
            for key, value in sorted(opt.state.get(p, {}).items()):
                out.append((gi, pi, key, value))
    return out


# ------------------------------------------------------------------ law 1: identity
def _identity_edit(net, opt) -> None:
    morpho.apply_edit(net, morpho.identity_edit(net), opt)


def _edge_permutation(net, order: torch.Tensor) -> morpho.Edit:
    """An edit that only reorders the edge rows (an identity for the network function)."""
    t = net.tissue.clone()
    t.edge_index, t.edge_id, t.edge_birth = (
        t.edge_index[:, order],
        t.edge_id[order],
        t.edge_birth[order],
    )
    n = t.num_nodes
    maps = {k: RowMap.build(order) if k == "strength" else RowMap.identity(n) for k in net.banks}
    return morpho.Edit("permute", maps, t)


def _permute_edges_and_back(net, opt) -> None:
    """Two real remaps of the edge bank (and its state) that compose to the identity."""
    old = net.banks["strength"]
    perm = torch.randperm(old.shape[0], generator=torch.Generator().manual_seed(1))
    for order in (perm, perm.argsort()):
        morpho.apply_edit(net, _edge_permutation(net, order), opt)
    assert net.banks["strength"] is not old


def _migrate_every_parameter(net, opt) -> None:
    """The surgery alone, with identity row maps, on every parameter (embedding and head too)."""
    for name, old in list(net.named_parameters()):
        rmap = RowMap.identity(old.shape[0])
        new = torch.nn.Parameter(remap_parameter(old.detach(), rmap))
        new.grad = remap_rows(old.grad, rmap)
        migrate_optimizer_state(opt, old, new, rmap)
        if name.startswith("banks."):
            net.banks[name.removeprefix("banks.")] = new
        else:
            setattr(net, name, new)
        assert opt.state[new] is not None and old not in opt.state


IDENTITIES = {
    "identity_edit": _identity_edit,
    "edge_permutation_and_inverse": _permute_edges_and_back,
    "surgery_on_every_parameter": _migrate_every_parameter,
}


@pytest.mark.parametrize("cell_type", CELL_TYPES_UNDER_TEST)
@pytest.mark.parametrize("how", sorted(IDENTITIES))
@pytest.mark.parametrize("opt_name", sorted(OPTIMIZERS))
def test_identity_edit_is_bit_invisible(opt_name: str, how: str, cell_type: str) -> None:
    edited, twin = tiny_net(cell_type=cell_type), tiny_net(cell_type=cell_type)
    opt_e, opt_t = make_optimizer(opt_name, edited), make_optimizer(opt_name, twin)
    assert len(opt_e.param_groups) == 2
    train(edited, opt_e, 3)
    train(twin, opt_t, 3)
    IDENTITIES[how](edited, opt_e)
    train(edited, opt_e, 3, seed=3)
    train(twin, opt_t, 3, seed=3)

    for (name, p), (_, q) in zip(edited.named_parameters(), twin.named_parameters(), strict=True):
        assert torch.equal(p, q), f"parameter {name} differs after an identity edit"
    items_e, items_t = _state_items(opt_e), _state_items(opt_t)
    assert len(items_e) == len(items_t) > 0
    for (g, i, key, a), (_, _, _, b) in zip(items_e, items_t, strict=True):
        same = torch.equal(a, b) if torch.is_tensor(a) else a == b
        assert same, f"optimizer state {key} of group {g} param {i} differs"
    for ge, gt in zip(opt_e.param_groups, opt_t.param_groups, strict=True):
        assert {k: v for k, v in ge.items() if k != "params"} == {
            k: v for k, v in gt.items() if k != "params"
        }
    assert_invariants(edited, opt_e)


@pytest.mark.parametrize("cell_type", CELL_TYPES_UNDER_TEST)
def test_identity_edit_keeps_tissue_and_gradients(cell_type: str) -> None:
    net = tiny_net(cell_type=cell_type)
    opt = make_optimizer("adamw", net)
    train(net, opt, 1)
    net(tokens(0)).sum().backward()
    grads = {k: v.grad.clone() for k, v in net.banks.items()}
    before = net.tissue.clone()
    morpho.apply_edit(net, morpho.identity_edit(net), opt)
    for key, value in before.items():
        got = net.tissue[key]
        assert torch.equal(got, value) if torch.is_tensor(value) else got == value, key
    for k, v in net.banks.items():
        assert torch.equal(v.grad, grads[k]), f"gradient of bank {k} changed"


# ---------------------------------------------------- law 2: function preservation
@pytest.mark.parametrize("cell_type", CELL_TYPES_UNDER_TEST)
@pytest.mark.parametrize(
    "role,k", [(INPUT, 0), (INPUT, 1), (HIDDEN, 0), (HIDDEN, 4), (OUTPUT, 0), (OUTPUT, 1)]
)
def test_split_without_noise_preserves_function(role: int, k: int, cell_type: str) -> None:
    net = tiny_net(cell_type=cell_type)
    opt = make_optimizer("adamw", net)
    train(net, opt, 2)  # move away from the symmetric initialisation
    x = tokens(7, batch=3, seq_len=12)
    with torch.no_grad():
        before = net(x)
    cell = cell_of(net, role, k)
    edit = morpho.split(net, cell, optimizer=opt, noise=0.0)
    assert net.tissue.num_nodes == 11 and cell not in net.cell_ids()
    assert set(edit.info["new_cells"]) <= set(net.cell_ids())
    with torch.no_grad():
        after = net(x)
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-5)
    assert_invariants(net, opt)


@pytest.mark.parametrize("cell_type", CELL_TYPES_UNDER_TEST)
def test_split_of_a_split_and_of_every_cell_preserves_function(cell_type: str) -> None:
    net = tiny_net(cell_type=cell_type)
    x = tokens(3)
    with torch.no_grad():
        before = net(x)
    for cell in list(net.cell_ids()):
        morpho.split(net, cell, noise=0.0)
    daughter = net.cell_ids()[0]
    morpho.split(net, daughter, noise=0.0)
    assert net.tissue.num_nodes == 21
    with torch.no_grad():
        torch.testing.assert_close(net(x), before, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cell_type", CELL_TYPES_UNDER_TEST)
@pytest.mark.parametrize("role", [INPUT, HIDDEN, OUTPUT])
def test_split_preserves_function_with_top_down_demand(role, cell_type: str) -> None:
    net = tiny_net(demand_weight=1.0, cell_type=cell_type)
    train(net, make_optimizer("adamw", net), 5)  # strengths of a level differ once trained
    net.tissue.gate_ema = torch.rand(net.tissue.num_nodes)  # distinct gates above each cell
    x = tokens(0)
    with torch.no_grad():
        before = net(x)
    morpho.split(net, cell_of(net, role, 0), noise=0.0)
    morpho.connect(net, cell_of(net, INPUT, 0), cell_of(net, OUTPUT, 0))
    with torch.no_grad():
        torch.testing.assert_close(net(x), before, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cell_type", CELL_TYPES_UNDER_TEST)
def test_split_with_noise_changes_function(cell_type: str) -> None:
    net = tiny_net(cell_type=cell_type)
    x = tokens(4)
    with torch.no_grad():
        before = net(x)
    morpho.split(net, cell_of(net, HIDDEN, 1), noise=0.1)
    with torch.no_grad():
        after = net(x)
    assert (after - before).abs().max() > 1e-4


def test_split_daughters_record_lineage(net) -> None:
    net.step = 17
    mother = cell_of(net, HIDDEN, 2)
    pos = net.tissue.pos[net.row_of(mother)].clone()
    edit = morpho.split(net, mother, noise=0.0, task=3)
    a, b = edit.info["new_cells"]
    t = net.tissue
    ra, rb = net.row_of(a), net.row_of(b)
    assert t.parent[ra] == t.parent[rb] == mother
    assert t.birth[ra] == t.birth[rb] == 17
    assert t.task[ra] == t.task[rb] == 3 and int(t.task.sum()) == 6
    torch.testing.assert_close((t.pos[ra] + t.pos[rb]) / 2, pos)
    assert t.next_cell_id == 12 and {a, b} == {10, 11}


@pytest.mark.parametrize("cell_type", CELL_TYPES_UNDER_TEST)
@pytest.mark.parametrize("src_role,dst_role", [(INPUT, HIDDEN), (INPUT, OUTPUT), (HIDDEN, OUTPUT)])
def test_connect_preserves_function(src_role: int, dst_role: int, cell_type: str) -> None:
    net = tiny_net(cell_type=cell_type)
    opt = make_optimizer("adam", net)
    train(net, opt, 2)
    x = tokens(5)
    with torch.no_grad():
        before = net(x)
    t = net.tissue
    src = cell_of(net, src_role, 0)
    # a target on a higher level that src does not feed yet
    fed = set(t.cell_id[t.edge_index[1][t.edge_index[0] == net.row_of(src)]].tolist())
    higher = t.cell_id[(t.role == dst_role) & (t.level > t.level[net.row_of(src)])].tolist()
    dst = next(c for c in reversed(higher) if c not in fed)
    edit = morpho.connect(net, src, dst, optimizer=opt)
    new_row = net.edge_row_of(edit.info["new_edges"][0])
    assert float(net.banks["strength"][new_row]) == 0.0
    with torch.no_grad():
        torch.testing.assert_close(net(x), before, rtol=0, atol=1e-6)
    assert_invariants(net, opt)


@pytest.mark.parametrize("cell_type", CELL_TYPES_UNDER_TEST)
def test_disconnect_of_a_zero_edge_preserves_function(cell_type: str) -> None:
    net = tiny_net(cell_type=cell_type)
    x = tokens(6)
    with torch.no_grad():
        before = net(x)
    edit = morpho.connect(net, cell_of(net, INPUT, 0), cell_of(net, OUTPUT, 1))
    morpho.disconnect(net, edit.info["new_edges"][0])
    with torch.no_grad():
        torch.testing.assert_close(net(x), before, rtol=0, atol=1e-6)


@pytest.mark.parametrize("cell_type", CELL_TYPES_UNDER_TEST)
@pytest.mark.parametrize("role,k", [(INPUT, 0), (INPUT, 1), (HIDDEN, 1), (HIDDEN, 3)])
def test_insert_in_series_preserves_function(role: int, k: int, cell_type: str) -> None:
    """The newborn copies its parent except the banks its type declares ``series="zero"``
    and relays its raw input: ``y_c = x_c = y_a``, and a took over no one's input."""
    net = tiny_net(cell_type=cell_type, demand_weight=0.5)
    opt = make_optimizer("adamw", net)
    train(net, opt, 2)
    net.tissue.gate_ema = torch.rand(net.tissue.num_nodes)  # distinct demands
    x = tokens(8, batch=3, seq_len=12)
    with torch.no_grad():
        before = net(x)
    cell = cell_of(net, role, k)
    edit = morpho.insert(net, cell, optimizer=opt)
    (new,) = edit.info["new_cells"]
    assert int(net.tissue.parent[net.row_of(new)]) == cell
    with torch.no_grad():
        torch.testing.assert_close(net(x), before, rtol=1e-5, atol=1e-5)
    assert_invariants(net, opt)
    assert all(math.isfinite(v) for v in train(net, opt, 2, seed=4))


@pytest.mark.parametrize("cell_type", CELL_TYPES_UNDER_TEST)
@pytest.mark.parametrize("bridge", [False, True])
def test_remove_of_a_cell_no_one_listens_to_preserves_function(
    cell_type: str, bridge: bool
) -> None:
    """A hidden cell whose outgoing strengths are zero contributes nothing: removing it
    (with bridges, which then carry strength 0) leaves the function as it was."""
    net = tiny_net(cell_type=cell_type)
    opt = make_optimizer("adamw", net)
    train(net, opt, 2)
    victim = cell_of(net, HIDDEN, 2)
    with torch.no_grad():
        net.banks["strength"][net.tissue.edge_index[0] == net.row_of(victim)] = 0.0
    x = tokens(9)
    with torch.no_grad():
        before = net(x)
    morpho.remove(net, victim, optimizer=opt, bridge=bridge)
    with torch.no_grad():
        torch.testing.assert_close(net(x), before, rtol=1e-6, atol=1e-6)
    assert_invariants(net, opt)


# ------------------------------------------------------- law 4: random edit sequences
# (kind, seed): the seed picks the target uniformly, so hypothesis' bias towards small
# integers does not pin every edit to row 0
EDIT_STEPS = st.lists(
    st.tuples(
        st.sampled_from(["split", "insert", "remove", "connect", "disconnect"]),
        st.integers(0, 2**32),
    ),
    min_size=1,
    max_size=10,
)


def _fingerprint(net) -> tuple:
    t = net.tissue
    return (
        t.cell_id.tolist(),
        t.edge_id.tolist(),
        t.edge_index.tolist(),
        [p.detach().clone() for p in net.parameters()],
    )


def _assert_unchanged(net, before: tuple) -> None:
    after = _fingerprint(net)
    assert after[:3] == before[:3]
    assert all(torch.equal(p, q) for p, q in zip(after[3], before[3], strict=True))


def _upward_candidates(t) -> list[tuple[int, int]]:
    """Row pairs a connect would accept: source on a lower level, no such edge yet."""
    existing = set(map(tuple, t.edge_index.T.tolist()))
    n = t.num_nodes
    return [
        (a, b)
        for a in range(n)
        for b in range(n)
        if int(t.level[a]) < int(t.level[b]) and (a, b) not in existing
    ]


def _random_edit(net, opt, kind: str, seed: int) -> bool:
    """Apply one edit, or check that the engine refuses exactly where the oracle says it must
    (and then changed nothing). Returns whether the edit was applied."""
    rng = random.Random(seed)
    t = net.tissue
    ids = net.cell_ids()
    before = _fingerprint(net)
    if kind == "split":
        morpho.split(net, rng.choice(ids), optimizer=opt, noise=0.05)
        return True
    if kind == "insert":
        r = rng.randrange(len(ids))
        should_refuse = int(t.role[r]) == OUTPUT or not bool((t.edge_index[0] == r).any())
        call = lambda: morpho.insert(net, ids[r], optimizer=opt)  # noqa: E731
    elif kind == "remove":
        r = rng.randrange(len(ids))
        should_refuse = not reaches_output(t, dead_cells={r})
        call = lambda: morpho.remove(net, ids[r], optimizer=opt, bridge=rng.random() < 0.5)  # noqa: E731
    elif kind == "disconnect":
        n_edges = t.edge_index.shape[1]
        bridges = [j for j in range(n_edges) if not reaches_output(t, dead_edges={j})]
        # half the time an edge whose cut the engine must refuse, when there is one
        j = rng.choice(bridges) if bridges and rng.random() < 0.5 else rng.randrange(n_edges)
        should_refuse = not reaches_output(t, dead_edges={j})
        call = lambda: morpho.disconnect(net, int(t.edge_id[j]), optimizer=opt)  # noqa: E731
    else:  # half the time a pair the engine should accept, else any pair
        candidates = _upward_candidates(t)
        if candidates and rng.random() < 0.5:
            ra, rb = rng.choice(candidates)
        else:
            ra, rb = rng.randrange(len(ids)), rng.randrange(len(ids))
        should_refuse = (ra, rb) not in candidates
        call = lambda: morpho.connect(net, ids[ra], ids[rb], optimizer=opt)  # noqa: E731
    if should_refuse:
        with pytest.raises(ValueError):
            call()
        _assert_unchanged(net, before)
        return False
    call()
    return True


EDIT_OUTCOMES: Counter = Counter()  # (kind, applied) -> count, filled by the fuzz below


@pytest.mark.parametrize("cell_type", CELL_TYPES_UNDER_TEST)
@pytest.mark.parametrize(
    "opt_name", ["adamw", "sgd-momentum", "rmsprop-centered-momentum", "adagrad"]
)
@settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(steps=EDIT_STEPS)
def test_random_edit_sequences_keep_invariants(opt_name: str, cell_type: str, steps) -> None:
    # narrow: removals and cuts hit bottlenecks
    net = tiny_net(level_sizes=(1, 2, 2, 1), cell_type=cell_type)
    opt = make_optimizer(opt_name, net)
    train(net, opt, 1)
    for i, (kind, seed) in enumerate(steps):
        applied = _random_edit(net, opt, kind, seed)
        EDIT_OUTCOMES[kind, applied] += 1
        assert_invariants(net, opt)
        losses = train(net, opt, 1, seed=10 + i)
        assert all(map(math.isfinite, losses))
        assert_invariants(net, opt)
        assert all(p in opt.state for p in net.parameters()), "a parameter lost its state"
    assert net.tissue.next_cell_id >= int(net.tissue.cell_id.max()) + 1


def test_random_edit_sequences_hit_both_outcomes() -> None:
    """The fuzz above must exercise every edit applied *and* refused (runs after it)."""
    if sum(EDIT_OUTCOMES.values()) == 0:
        pytest.skip("run together with test_random_edit_sequences_keep_invariants")
    missing = [
        (k, ok)
        for k in ("insert", "remove", "connect", "disconnect")
        for ok in (True, False)
        if not EDIT_OUTCOMES[k, ok]
    ]
    assert not missing, f"never seen: {missing}; outcomes {dict(EDIT_OUTCOMES)}"


def test_edit_ids_never_reused(net) -> None:
    seen_cells, seen_edges = set(net.cell_ids()), set(net.tissue.edge_id.tolist())
    for _ in range(3):
        edit = morpho.split(net, cell_of(net, HIDDEN, 0))
        assert not set(edit.info["new_cells"]) & seen_cells
        assert not set(edit.info["new_edges"]) & seen_edges
        seen_cells |= set(edit.info["new_cells"])
        seen_edges |= set(edit.info["new_edges"])
        morpho.remove(net, edit.info["new_cells"][0])


# ------------------------------------------------------------------ law 6: refusals
def test_remove_refuses_to_cut_every_input_from_every_output() -> None:
    net = tiny_net(level_sizes=(1, 1, 1))
    before = _fingerprint(net)
    for cell in net.cell_ids():
        with pytest.raises(ValueError, match="disconnect every input"):
            morpho.remove(net, cell)
    _assert_unchanged(net, before)


def test_remove_refuses_the_last_cell_of_a_bottleneck(net) -> None:
    hidden1 = net.tissue.cell_id[net.tissue.level == 1].tolist()
    for cell in hidden1[:-1]:
        morpho.remove(net, cell)
    with pytest.raises(ValueError, match=f"removing cell {hidden1[-1]}"):
        morpho.remove(net, hidden1[-1])
    assert_invariants(net)


def test_connect_refuses_duplicate_same_level_and_downward_edges(net) -> None:
    t = net.tissue
    a, b = (int(t.cell_id[r]) for r in t.edge_index[:, 0])
    before = _fingerprint(net)
    with pytest.raises(ValueError, match="already connected"):
        morpho.connect(net, a, b)
    with pytest.raises(ValueError, match="must go up a level"):
        morpho.connect(net, b, a)
    with pytest.raises(ValueError, match="must go up a level"):
        morpho.connect(net, cell_of(net, HIDDEN, 0), cell_of(net, HIDDEN, 1))
    with pytest.raises(ValueError, match="no live cell"):
        morpho.connect(net, a, 999)
    _assert_unchanged(net, before)


def test_disconnect_refuses_the_last_path() -> None:
    net = tiny_net(level_sizes=(1, 2, 1))  # rows: input 0, hidden 1 and 2, output 3
    t = net.tissue
    first = int(t.edge_id[(t.edge_index[0] == 0) & (t.edge_index[1] == 1)])
    morpho.disconnect(net, first)  # the one path left is 0 -> 2 -> 3
    t = net.tissue
    on_path = [
        int(t.edge_id[(t.edge_index[0] == a) & (t.edge_index[1] == b)]) for a, b in ((0, 2), (2, 3))
    ]
    before = _fingerprint(net)
    for edge in on_path:
        with pytest.raises(ValueError, match=f"removing edge {edge}"):
            morpho.disconnect(net, edge)
    _assert_unchanged(net, before)
    with pytest.raises(ValueError, match="no edge with id"):
        morpho.disconnect(net, first)
    dangling = int(t.edge_id[t.edge_index[0] == 1])  # 1 -> 3, off the path: may go
    morpho.disconnect(net, dangling)
    assert net.tissue.edge_index.shape[1] == 2


def test_remove_with_bridge_adds_product_strength_edges(net) -> None:
    with torch.no_grad():
        net.banks["strength"].uniform_(0.5, 2.0)
    t = net.tissue
    # a skip edge input -> output exists already: the bridge must leave it as it was
    a, b = cell_of(net, INPUT, 0), cell_of(net, OUTPUT, 0)
    skip = morpho.connect(net, a, b).info["new_edges"][0]
    with torch.no_grad():
        net.banks["strength"][net.edge_row_of(skip)] = 0.25
    victim = cell_of(net, HIDDEN, 0)
    t = net.tissue
    s = dict(zip(t.edge_id.tolist(), net.banks["strength"].tolist(), strict=True))
    ends = t.cell_id[t.edge_index].T.tolist()  # (E, 2) stable ids of source and target
    pair = {(u, v): i for (u, v), i in zip(ends, t.edge_id.tolist(), strict=True)}
    ins = [(u, e) for (u, v), e in pair.items() if v == victim]
    outs = [(v, e) for (u, v), e in pair.items() if u == victim]
    expected = {(u, v): s[e1] * s[e2] for u, e1 in ins for v, e2 in outs if (u, v) not in pair}
    assert expected, "the victim should have bridgeable paths"

    edit = morpho.remove(net, victim, bridge=True)
    t = net.tissue
    got = {
        (int(t.cell_id[u]), int(t.cell_id[v])): float(net.banks["strength"][j])
        for j, (u, v) in enumerate(t.edge_index.T.tolist())
    }
    assert len(edit.info["new_edges"]) == len(expected)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-6), f"bridge {key}"
    assert got[(a, b)] == 0.25  # existing edge untouched
    assert victim not in net.cell_ids()
    assert t.edge_index.shape[1] == len(pair) - len(ins) - len(outs) + len(expected)
    assert_invariants(net)


def test_remove_without_bridge_drops_the_cell_and_its_edges(net) -> None:
    victim = cell_of(net, HIDDEN, 3)
    r = net.row_of(victim)
    t = net.tissue
    incident = set(t.edge_id[(t.edge_index[0] == r) | (t.edge_index[1] == r)].tolist())
    survivors = set(t.edge_id.tolist()) - incident
    edit = morpho.remove(net, victim)
    assert set(edit.info["dead_edges"]) == incident
    assert set(net.tissue.edge_id.tolist()) == survivors
    assert net.tissue.num_nodes == 9 and victim not in net.cell_ids()
    assert_invariants(net)
