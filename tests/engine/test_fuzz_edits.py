"""Property-based fuzzing of topology edits (hypothesis).

Random sequences of up to 200 edits — split, insert, remove, connect, disconnect, with
training steps in between, a random optimizer and either cell type under test — on random
seed tissues must keep the DESIGN §2
invariants: a valid tissue (unique ids, no edge at a dead cell, edges going up a level),
an input→output path, every parameter with optimizer state of its own shape, the
optimizer holding exactly the module's parameters, and a finite forward. Refused edits
must be refused for their documented reason only.
"""

from __future__ import annotations

import pytest
import torch
from conftest import CELL_TYPES_UNDER_TEST
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import morpho
from morpho.tissue import OUTPUT, check_tissue, io_connected

OPTIMIZERS = {
    "sgd": lambda groups: torch.optim.SGD(groups, lr=1e-2, momentum=0.9),
    "adam": lambda groups: torch.optim.Adam(groups, lr=1e-3, amsgrad=True),
    "adamw": lambda groups: torch.optim.AdamW(groups, lr=1e-3),
    "rmsprop": lambda groups: torch.optim.RMSprop(groups, lr=1e-3, momentum=0.5, centered=True),
    "adagrad": lambda groups: torch.optim.Adagrad(groups, lr=1e-2, initial_accumulator_value=0.1),
}
VOCAB = 7


def _groups(net: morpho.Network) -> list[dict]:
    params = list(net.parameters())
    return [{"params": params[::2]}, {"params": params[1::2], "weight_decay": 0.0}]


def _train_step(net, opt, tokens):
    out = net.run(tokens)
    loss = out.logits.logsumexp(-1).mean() + 0.1 * out.aux_loss
    opt.zero_grad()
    loss.backward()
    opt.step()


def _check_invariants(net, opt, tokens):
    t = net.tissue
    check_tissue(t)
    assert io_connected(t), "no path from an input cell to an output cell"
    module_params = {id(p) for p in net.parameters()}
    opt_params = [p for g in opt.param_groups for p in g["params"]]
    assert {id(p) for p in opt_params} == module_params
    assert len(opt_params) == len(module_params)
    for p in opt_params:
        for key, value in opt.state.get(p, {}).items():
            assert value.dim() == 0 or value.shape == p.shape, key
    for name, bank in net.banks.items():
        rows = t.edge_index.shape[1] if name == "strength" else t.num_nodes
        assert bank.shape[0] == rows, name
    with torch.no_grad():
        assert torch.isfinite(net(tokens)).all()


def _apply_random_edit(net, opt, op, pick, noise):
    t = net.tissue
    ids = net.cell_ids()
    if op == "split":
        morpho.split(net, ids[pick % len(ids)], optimizer=opt, noise=noise)
    elif op == "insert":
        row = pick % len(ids)
        allowed = int(t.role[row]) != OUTPUT and bool((t.edge_index[0] == row).any())
        try:
            morpho.insert(net, ids[row], optimizer=opt)
        except ValueError:
            assert not allowed, "insert refused a cell that feeds another"
            return
        assert allowed, "insert accepted an output cell or one that feeds no cell"
    elif op == "remove":
        row = pick % len(ids)
        allowed = io_connected(t, dead_cells=[row])
        try:
            morpho.remove(net, ids[row], optimizer=opt, bridge=bool(pick % 2))
        except ValueError:
            assert not allowed, "remove refused although the tissue stays connected"
            return
        assert allowed, "remove accepted although it disconnects inputs from outputs"
    elif op == "connect":
        a, b = ids[pick % len(ids)], ids[(pick * 7 + 3) % len(ids)]
        ra, rb = net.row_of(a), net.row_of(b)
        exists = bool(((t.edge_index[0] == ra) & (t.edge_index[1] == rb)).any())
        ok = int(t.level[ra]) < int(t.level[rb]) and not exists
        try:
            morpho.connect(net, a, b, optimizer=opt)
        except ValueError:
            assert not ok, "connect refused a legal edge"
            return
        assert ok, "connect accepted an illegal edge"
    elif op == "disconnect" and t.edge_index.shape[1]:
        j = pick % t.edge_index.shape[1]
        allowed = io_connected(t, dead_edges=[j])
        try:
            morpho.disconnect(net, int(t.edge_id[j]), optimizer=opt)
        except ValueError:
            assert not allowed
            return
        assert allowed


edit_ops = st.tuples(
    st.sampled_from(["split", "insert", "remove", "connect", "disconnect", "train"]),
    st.integers(0, 10_000),
    st.sampled_from([0.0, 0.01]),
)


def _run(level_sizes, optimizer, ops, seed=0, cell_type="thermo"):
    torch.manual_seed(seed)
    cfg = morpho.NetworkConfig(
        vocab_size=VOCAB,
        d_cell=4,
        n_heads=1,
        mlp_ratio=1,
        level_sizes=tuple(level_sizes),
        cell_type=cell_type,
        seed=seed,
    )
    net = morpho.Network(cfg)
    opt = OPTIMIZERS[optimizer](_groups(net))
    tokens = torch.randint(0, VOCAB, (2, 5))
    _train_step(net, opt, tokens)
    for op, pick, noise in ops:
        if op == "train":
            _train_step(net, opt, tokens)
        elif net.tissue.num_nodes < 60 or op not in ("split", "insert"):
            _apply_random_edit(net, opt, op, pick, noise)
        _check_invariants(net, opt, tokens)
    _train_step(net, opt, tokens)
    _check_invariants(net, opt, tokens)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    level_sizes=st.lists(st.integers(1, 3), min_size=2, max_size=4),
    optimizer=st.sampled_from(sorted(OPTIMIZERS)),
    ops=st.lists(edit_ops, max_size=200),
    cell_type=st.sampled_from(CELL_TYPES_UNDER_TEST),
)
# regression examples: a single-path tissue where every removal must be refused, and a
# long split chain followed by removals with bridges
@example(
    level_sizes=[1, 1],
    optimizer="adam",
    ops=[("remove", 0, 0.0), ("disconnect", 0, 0.0)],
    cell_type="thermo",
)
@example(
    level_sizes=[1, 1, 1],
    optimizer="adagrad",
    ops=[("split", 1, 0.01)] * 6 + [("remove", 3, 0.0), ("train", 0, 0.0)] * 4,
    cell_type="gated",
)
@example(
    level_sizes=[1, 2, 1],
    optimizer="rmsprop",
    ops=[("insert", 1, 0.0), ("insert", 0, 0.0), ("train", 0, 0.0), ("remove", 2, 0.0)],
    cell_type="gated",
)
def test_random_edit_sequences_keep_the_invariants(level_sizes, optimizer, ops, cell_type):
    _run(level_sizes, optimizer, ops, cell_type=cell_type)


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    level_sizes=st.lists(st.integers(1, 4), min_size=2, max_size=5),
    optimizer=st.sampled_from(sorted(OPTIMIZERS)),
    ops=st.lists(edit_ops, min_size=100, max_size=200),
    cell_type=st.sampled_from(CELL_TYPES_UNDER_TEST),
)
def test_long_random_edit_sequences_keep_the_invariants(level_sizes, optimizer, ops, cell_type):
    _run(level_sizes, optimizer, ops, cell_type=cell_type)
