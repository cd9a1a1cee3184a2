"""The tissue: the cell graph as a ``torch_geometric.data.Data``, its exports and snapshots.

Row ``i`` of every per-cell tensor is the cell that owns row ``i`` of every cell bank of the
network; ``cell_id`` is the stable name that survives re-indexing. Edges are directed
``source -> target`` in ``edge_index`` (row indices), with a stable ``edge_id``.

Per cell (N rows):
    pos (N, 3) float     physical position (movies, wiring cost)
    level (N,) long      compute depth; edges go from a lower to a higher level (a DAG)
    role (N,) long       0 input, 1 hidden, 2 output (see ``ROLES``)
    birth (N,) long      training step the cell was born
    parent (N,) long     cell_id of the mother cell, -1 for seed cells
    cell_id (N,) long    stable id
    fe_ema, gate_ema, surprise_ema (N,) float   running statistics read by the scheduler
    task (N,) long       task index during which the cell was born (continual learning)
    clock (N,) long      period of the cell's clock in tokens: its recurrent state updates
                         every ``clock``-th token and is held between ticks (1: every token);
                         the cells of one level share a clock
    raw_skip (N,) long   1: the cell's residual carries its raw input (``y = x + …``, cells born
                         in series, identity at birth); 0: the normalised input (seed cells)
Per edge (E columns):
    edge_index (2, E) long, edge_id (E,) long, edge_birth (E,) long
Graph attributes: ``next_cell_id``, ``next_edge_id`` (ints).

Use :func:`seed_tissue` to build one, :func:`check_tissue` to assert the invariants,
:func:`to_networkx` / :func:`save_graphml` to export, :func:`save_snapshot` /
:func:`load_snapshot` for the compact npz a movie frame is drawn from.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import torch
from torch_geometric.data import Data

from morpho.files import atomic_write

ROLES = ("input", "hidden", "output")
INPUT, HIDDEN, OUTPUT = 0, 1, 2

CELL_FIELDS = (
    "pos",
    "level",
    "role",
    "birth",
    "parent",
    "cell_id",
    "fe_ema",
    "gate_ema",
    "surprise_ema",
    "task",
    "clock",
    "raw_skip",
)
CELL_DEFAULTS = {"clock": 1, "raw_skip": 0}  # fields a tissue from an older version may lack
EDGE_FIELDS = ("edge_id", "edge_birth")


def seed_tissue(level_sizes: Sequence[int], seed: int = 0, fan_in: int = 0) -> Data:
    """A layered seed tissue: level 0 are inputs, the last level outputs.

    Args:
        level_sizes: cells per level, e.g. ``(2, 4, 4, 2)``; at least two levels.
        seed: seed of the layout jitter and of the sparse wiring.
        fan_in: 0 wires every cell of level ``l`` to every cell of level ``l + 1``; ``k > 0``
            gives each cell of level ``l + 1`` edges from ``k`` random cells of level ``l``
            (for large sparse tissues).

    Returns:
        The tissue, sorted by level (rows of a level are contiguous).
    """
    if len(level_sizes) < 2 or min(level_sizes) < 1:
        raise ValueError(f"level_sizes needs >= 2 levels of >= 1 cell each; got {level_sizes}")
    gen = torch.Generator().manual_seed(seed)
    levels = torch.cat([torch.full((n,), lvl) for lvl, n in enumerate(level_sizes)])
    n_cells = int(levels.numel())
    role = torch.full((n_cells,), HIDDEN)
    role[levels == 0] = INPUT
    role[levels == len(level_sizes) - 1] = OUTPUT
    pos = _layered_layout(level_sizes, gen)
    starts = np.cumsum([0, *level_sizes])
    src, dst = [], []
    for lvl in range(len(level_sizes) - 1):
        a = torch.arange(starts[lvl], starts[lvl + 1])
        b = torch.arange(starts[lvl + 1], starts[lvl + 2])
        if fan_in and fan_in < len(a):
            pick = _distinct_picks(len(b), len(a), fan_in, gen)  # (len(b), fan_in)
            src.append(a[pick].flatten())  # (len(b) * fan_in,)
            dst.append(b.repeat_interleave(fan_in))
        else:
            src.append(a.repeat_interleave(len(b)))
            dst.append(b.repeat(len(a)))
    edge_index = torch.stack([torch.cat(src), torch.cat(dst)])
    n_edges = edge_index.shape[1]
    return Data(
        pos=pos,
        level=levels.long(),
        role=role.long(),
        birth=torch.zeros(n_cells, dtype=torch.long),
        parent=torch.full((n_cells,), -1, dtype=torch.long),
        cell_id=torch.arange(n_cells),
        fe_ema=torch.zeros(n_cells),
        gate_ema=torch.full((n_cells,), 0.5),
        surprise_ema=torch.zeros(n_cells),
        task=torch.zeros(n_cells, dtype=torch.long),
        clock=torch.ones(n_cells, dtype=torch.long),
        raw_skip=torch.zeros(n_cells, dtype=torch.long),
        edge_index=edge_index,
        edge_id=torch.arange(n_edges),
        edge_birth=torch.zeros(n_edges, dtype=torch.long),
        next_cell_id=n_cells,
        next_edge_id=n_edges,
        num_nodes=n_cells,
    )


def _distinct_picks(rows: int, n: int, k: int, gen: torch.Generator) -> torch.Tensor:
    """``k`` distinct random integers in ``[0, n)`` per row, in O(rows · k) expected time.

    Rows that drew a repeat are redrawn (rare when ``k`` ≪ ``n``); for ``k`` near ``n`` a
    row-wise permutation is cheaper.
    """
    if 2 * k > n:
        return torch.rand(rows, n, generator=gen).argsort(dim=1)[:, :k]
    pick = torch.randint(0, n, (rows, k), generator=gen)
    while True:
        s = pick.sort(dim=1).values
        bad = (s[:, 1:] == s[:, :-1]).any(1).nonzero().flatten()
        if bad.numel() == 0:
            return pick
        pick[bad] = torch.randint(0, n, (bad.numel(), k), generator=gen)


def _layered_layout(level_sizes: Sequence[int], gen: torch.Generator) -> torch.Tensor:
    """Levels stacked along z, the cells of a level on a ring (radius grows with its size)."""
    rows = []
    for lvl, n in enumerate(level_sizes):
        angle = torch.arange(n) * (2 * math.pi / n)
        radius = 0.5 * math.sqrt(n)
        height = torch.full((n,), lvl * 1.5)
        ring = torch.stack([radius * angle.cos(), radius * angle.sin(), height])
        rows.append(ring.T + 0.05 * torch.randn(n, 3, generator=gen))
    return torch.cat(rows).float()


def with_defaults(t: Data) -> Data:
    """``t`` with every field of :data:`CELL_DEFAULTS` it lacks filled in (older snapshots)."""
    for name, value in CELL_DEFAULTS.items():
        if name not in t:
            t[name] = torch.full((t.num_nodes,), value, dtype=torch.long)
    return t


def check_tissue(t: Data) -> None:
    """Assert the DESIGN §2 invariants; raises ``AssertionError`` naming the broken one."""
    n = t.num_nodes
    for name in CELL_FIELDS:
        assert getattr(t, name).shape[0] == n, f"cell field {name} has wrong length"
    e = t.edge_index.shape[1]
    for name in EDGE_FIELDS:
        assert getattr(t, name).shape[0] == e, f"edge field {name} has wrong length"
    assert t.cell_id.unique().numel() == n, "cell ids are not unique"
    if n:
        assert int(t.clock.min()) >= 1, "clock period below 1"
        lv = t.level - t.level.min()
        size = int(lv.max()) + 1
        hi = t.clock.new_zeros(size).scatter_reduce(0, lv, t.clock, "amax", include_self=False)
        lo = t.clock.new_zeros(size).scatter_reduce(0, lv, t.clock, "amin", include_self=False)
        assert torch.equal(hi, lo), "cells of one level on different clocks"
    assert t.edge_id.unique().numel() == e, "edge ids are not unique"
    if e:
        assert int(t.edge_index.min()) >= 0 and int(t.edge_index.max()) < n, "edge to dead cell"
        src, dst = t.edge_index
        assert bool((t.level[src] < t.level[dst]).all()), "edge not going up a level"
        pairs = src * n + dst
        assert pairs.unique().numel() == e, "duplicate edge"
    if n:
        assert int(t.cell_id.max()) < t.next_cell_id, "cell id beyond next_cell_id"
    if e:
        assert int(t.edge_id.max()) < t.next_edge_id, "edge id beyond next_edge_id"


def io_connected(t: Data, dead_cells: Sequence[int] = (), dead_edges: Sequence[int] = ()) -> bool:
    """True if some input cell still reaches some output cell once the given rows are gone.

    A multi-source sweep over the edge list until nothing new is reached: O(depth · E)
    tensor work (depth ≤ number of levels in a tissue), instead of one graph search per
    input cell, which made removing a cell quadratic in the tissue size.
    """
    dev = t.edge_index.device
    alive = torch.ones(t.num_nodes, dtype=torch.bool, device=dev)
    alive[torch.as_tensor(list(dead_cells), dtype=torch.long, device=dev)] = False
    live_edge = torch.ones(t.edge_index.shape[1], dtype=torch.bool, device=dev)
    live_edge[torch.as_tensor(list(dead_edges), dtype=torch.long, device=dev)] = False
    src, dst = t.edge_index[:, live_edge]
    keep = alive[src] & alive[dst]
    src, dst = src[keep], dst[keep]
    reach = alive & (t.role.to(dev) == INPUT)
    outputs = alive & (t.role.to(dev) == OUTPUT)
    while True:
        grown = reach.clone()
        grown[dst[reach[src]]] = True
        if torch.equal(grown, reach):
            return bool((reach & outputs).any())
        reach = grown


def to_networkx(t: Data, with_attrs: bool = True) -> nx.DiGraph:
    """The tissue as a ``networkx.DiGraph`` over row indices; cell and edge fields as attributes."""
    g = nx.DiGraph()
    n = t.num_nodes
    g.add_nodes_from(range(n))
    src, dst = t.edge_index.tolist() if t.edge_index.numel() else ([], [])
    if not with_attrs:
        g.add_edges_from(zip(src, dst, strict=True))
        return g
    for name in CELL_FIELDS:
        values = getattr(t, name).tolist()
        for i in range(n):
            g.nodes[i][name] = values[i] if name != "pos" else None
    pos = t.pos.tolist()
    for i in range(n):
        g.nodes[i]["x"], g.nodes[i]["y"], g.nodes[i]["z"] = pos[i]
        del g.nodes[i]["pos"]
        g.nodes[i]["role"] = ROLES[g.nodes[i]["role"]]
    extra = {k: getattr(t, k).tolist() for k in ("strength",) if hasattr(t, k)}
    ids, births = t.edge_id.tolist(), t.edge_birth.tolist()
    for j, (a, b) in enumerate(zip(src, dst, strict=True)):
        attrs = {"edge_id": ids[j], "birth": births[j]}
        attrs.update({k: v[j] for k, v in extra.items()})
        g.add_edge(a, b, **attrs)
    return g


def save_graphml(t: Data, path: str | os.PathLike[str]) -> None:
    """Write the tissue as GraphML (nodes named by cell_id), atomically."""
    g = nx.relabel_nodes(to_networkx(t), dict(enumerate(t.cell_id.tolist())))
    atomic_write(Path(path), lambda f: nx.write_graphml(g, f))


def save_snapshot(
    t: Data, path: str | os.PathLike[str], meta: dict[str, Any] | None = None
) -> None:
    """Write the compact npz snapshot a movie frame is drawn from, atomically.

    Every tensor attribute of the tissue is stored (cell fields, edge fields, and any
    extras such as ``strength`` or ``n_params``), plus ``meta`` as JSON (step, loss, …).
    """
    arrays = {k: v.detach().cpu().numpy() for k, v in t.items() if torch.is_tensor(v)}
    meta = dict(meta or {})
    meta.update(next_cell_id=int(t.next_cell_id), next_edge_id=int(t.next_edge_id))
    arrays["meta_json"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    atomic_write(Path(path), lambda f: np.savez_compressed(f, **arrays))  # type: ignore[arg-type]


def load_snapshot(path: str | os.PathLike[str]) -> tuple[Data, dict[str, Any]]:
    """Read a snapshot written by :func:`save_snapshot`; returns ``(tissue, meta)``."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(arrays.pop("meta_json").tobytes().decode())
    data = Data(**{k: torch.from_numpy(v) for k, v in arrays.items()})
    data.num_nodes = int(data.cell_id.shape[0])
    data.next_cell_id = meta.pop("next_cell_id")
    data.next_edge_id = meta.pop("next_edge_id")
    return data, meta
