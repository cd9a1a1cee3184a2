"""Laws of the tissue: seed wiring, invariant checks, exports and snapshot round trips."""

from __future__ import annotations

import networkx as nx
import pytest
import torch
from conftest import cell_of, reaches_output, tiny_net

import morpho
from morpho.tissue import (
    CELL_FIELDS,
    HIDDEN,
    INPUT,
    OUTPUT,
    ROLES,
    check_tissue,
    io_connected,
    load_snapshot,
    save_graphml,
    save_snapshot,
    seed_tissue,
    to_networkx,
)


def _grown_tissue():
    net = tiny_net()
    morpho.split(net, cell_of(net, HIDDEN, 0), noise=0.1)
    morpho.connect(net, cell_of(net, INPUT, 0), cell_of(net, OUTPUT, 0))
    morpho.remove(net, cell_of(net, HIDDEN, 3))
    return net


# -------------------------------------------------------------------- seed tissue
def test_seed_tissue_dense_wiring() -> None:
    t = seed_tissue((2, 3, 4, 2))
    check_tissue(t)
    assert t.num_nodes == 11 and t.edge_index.shape[1] == 2 * 3 + 3 * 4 + 4 * 2
    assert t.role.tolist() == [INPUT] * 2 + [HIDDEN] * 7 + [OUTPUT] * 2
    assert t.level.tolist() == [0, 0, 1, 1, 1, 2, 2, 2, 2, 3, 3]
    src, dst = t.edge_index
    assert bool((t.level[dst] == t.level[src] + 1).all())
    assert t.next_cell_id == 11 and t.next_edge_id == t.edge_index.shape[1]


def test_seed_tissue_sparse_wiring_has_the_fan_in() -> None:
    t = seed_tissue((4, 8, 8, 3), seed=1, fan_in=3)
    check_tissue(t)
    fan_in = torch.bincount(t.edge_index[1], minlength=t.num_nodes)
    assert fan_in[t.level == 0].eq(0).all()
    assert fan_in[t.level > 0].eq(3).all()
    assert torch.equal(seed_tissue((4, 8, 8, 3), seed=1, fan_in=3).edge_index, t.edge_index)


@pytest.mark.parametrize("sizes", [(3,), (2, 0, 2), ()])
def test_seed_tissue_rejects_bad_levels(sizes) -> None:
    with pytest.raises(ValueError, match="level_sizes"):
        seed_tissue(sizes)


# ---------------------------------------------------------------- check_tissue
@pytest.mark.parametrize(
    "breakage,message",
    [
        (lambda t: t.cell_id.__setitem__(1, int(t.cell_id[0])), "cell ids are not unique"),
        (lambda t: t.edge_id.__setitem__(1, int(t.edge_id[0])), "edge ids are not unique"),
        (lambda t: t.edge_index.__setitem__((1, 0), t.num_nodes), "edge to dead cell"),
        (lambda t: t.edge_index.__setitem__((1, 0), 0), "edge not going up a level"),
        (lambda t: setattr(t, "birth", t.birth[:-1]), "cell field birth"),
        (lambda t: setattr(t, "next_cell_id", 3), "beyond next_cell_id"),
    ],
)
def test_check_tissue_names_the_broken_invariant(breakage, message: str) -> None:
    t = seed_tissue((2, 3, 2))
    check_tissue(t)
    breakage(t)
    with pytest.raises(AssertionError, match=message):
        check_tissue(t)


def test_check_tissue_catches_duplicate_edges() -> None:
    t = seed_tissue((2, 3, 2))
    t.edge_index = torch.cat([t.edge_index, t.edge_index[:, :1]], dim=1)
    t.edge_id = torch.arange(t.edge_index.shape[1])
    t.edge_birth = torch.zeros(t.edge_index.shape[1], dtype=torch.long)
    t.next_edge_id = t.edge_index.shape[1]
    with pytest.raises(AssertionError, match="duplicate edge"):
        check_tissue(t)


def test_io_connected_agrees_with_the_cut() -> None:
    t = seed_tissue((1, 2, 1))  # 0 -> {1, 2} -> 3
    assert io_connected(t)
    assert io_connected(t, dead_cells=[1]) and not io_connected(t, dead_cells=[1, 2])
    assert not io_connected(t, dead_cells=[0]) and not io_connected(t, dead_cells=[3])
    to_1 = int(((t.edge_index[0] == 0) & (t.edge_index[1] == 1)).nonzero())
    from_2 = int(((t.edge_index[0] == 2) & (t.edge_index[1] == 3)).nonzero())
    assert io_connected(t, dead_edges=[to_1]) and not io_connected(t, dead_edges=[to_1, from_2])


def test_io_connected_agrees_with_a_bfs_oracle_on_random_cuts() -> None:
    rng = torch.Generator().manual_seed(0)
    answers = []
    for k in range(60):
        sizes = torch.randint(
            1, 5, (int(torch.randint(2, 6, (1,), generator=rng)),), generator=rng
        ).tolist()
        t = seed_tissue(sizes, seed=k, fan_in=k % 3)
        n, e = t.num_nodes, t.edge_index.shape[1]
        dead_cells = set(torch.randperm(n, generator=rng)[: k % (n // 2 + 1)].tolist())
        dead_edges = set(torch.randperm(e, generator=rng)[: k % (e // 2 + 1)].tolist())
        expected = reaches_output(t, dead_cells, dead_edges)
        assert io_connected(t, sorted(dead_cells), sorted(dead_edges)) == expected
        answers.append(expected)
    assert any(answers) and not all(answers)


# -------------------------------------------------------------------- exports
def test_to_networkx_counts_and_attributes() -> None:
    net = _grown_tissue()
    t = net.snapshot()
    g = to_networkx(t)
    assert g.number_of_nodes() == t.num_nodes
    assert g.number_of_edges() == t.edge_index.shape[1]
    for i in range(t.num_nodes):
        node = g.nodes[i]
        assert node["role"] == ROLES[int(t.role[i])]
        assert node["cell_id"] == int(t.cell_id[i]) and node["level"] == int(t.level[i])
        assert (node["x"], node["y"], node["z"]) == pytest.approx(t.pos[i].tolist())
        assert {f for f in CELL_FIELDS if f != "pos"} <= set(node)
    for j, (a, b) in enumerate(t.edge_index.T.tolist()):
        edge = g.edges[a, b]
        assert edge["edge_id"] == int(t.edge_id[j]) and edge["birth"] == int(t.edge_birth[j])
        assert edge["strength"] == pytest.approx(float(t.strength[j]))
    assert nx.is_directed_acyclic_graph(g)


def test_graphml_export_reads_back_with_networkx(tmp_path) -> None:
    net = _grown_tissue()
    t = net.snapshot()
    path = tmp_path / "tissue.graphml"
    save_graphml(t, path)
    g = nx.read_graphml(path)
    assert g.is_directed()
    assert sorted(int(n) for n in g.nodes) == sorted(t.cell_id.tolist())
    assert g.number_of_edges() == t.edge_index.shape[1]
    ids = t.cell_id.tolist()
    expected = {(str(ids[a]), str(ids[b])) for a, b in t.edge_index.T.tolist()}
    assert set(g.edges) == expected
    row = 3
    node = g.nodes[str(ids[row])]
    assert node["role"] == ROLES[int(t.role[row])] and int(node["level"]) == int(t.level[row])
    assert float(node["z"]) == pytest.approx(float(t.pos[row, 2]))
    assert not list(tmp_path.glob(".*.tmp")), "atomic write left a temp file"


def test_snapshot_round_trip(tmp_path) -> None:
    net = _grown_tissue()
    out = net.run(torch.zeros(1, 4, dtype=torch.long))  # the statistics the snapshot carries
    t = net.snapshot(out.stats)
    meta = {"step": 12, "kind": "split", "loss": 2.5, "cells": [1, 2]}
    save_snapshot(t, tmp_path / "s.npz", meta)
    back, got_meta = load_snapshot(tmp_path / "s.npz")
    assert got_meta == meta
    assert back.next_cell_id == t.next_cell_id and back.next_edge_id == t.next_edge_id
    assert back.num_nodes == t.num_nodes
    keys = {k for k, v in t.items() if torch.is_tensor(v)}
    assert keys == {k for k, v in back.items() if torch.is_tensor(v)}
    assert {"strength", "n_params", "gate_mean"} <= keys
    for k in keys:
        assert back[k].dtype == t[k].dtype, k
        assert torch.equal(back[k], t[k]), k
    check_tissue(back)


def test_snapshot_write_is_atomic_over_an_old_file(tmp_path) -> None:
    path = tmp_path / "s.npz"
    save_snapshot(seed_tissue((1, 1)), path, {"step": 0})
    save_snapshot(seed_tissue((2, 3, 2)), path, {"step": 1})
    back, meta = load_snapshot(path)
    assert meta == {"step": 1} and back.num_nodes == 7
    assert [p.name for p in tmp_path.iterdir()] == ["s.npz"]
