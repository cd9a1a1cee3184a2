"""A stable 3D layout of a growing tissue: snapshot positions, relaxed a little, frame to frame.

    layouts = stable_layout(run.snapshots)   # one (N_k, 3) array per snapshot, rows as in it

Cells keep the ``pos`` their snapshot gives them; a short force relaxation (springs along
edges, repulsion between cells closer than the spacing, a pull back to ``pos``) keeps a
crowded tissue readable. Each snapshot's relaxation is warm-started from the previous
one's result, matched by ``cell_id``, so a cell does not jump between frames; a newborn
cell starts beside its parent (at the parent's laid-out place plus the offset the engine
gave it). networkx ``spring_layout`` is not used: it re-initialises nodes it is not given
and changes method at 500 nodes.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from morpho.viz.runs import Snapshot

ITERATIONS = 25  # relaxation steps per snapshot
STEP = 0.25  # fraction of the net force applied per step
ANCHOR = 0.15  # pull back to the snapshot position, relative to the other forces
SPRING = 0.02  # pull along an over-long edge (weak: the engine already places daughters)


def spacing(snapshots: list[Snapshot]) -> float:
    """The mean distance between cells if the largest tissue filled the joint bounding box."""
    pos = np.concatenate([s.cells["pos"] for s in snapshots])
    if len(pos) < 2:
        return 1.0
    extent = np.ptp(pos, axis=0)
    extent = np.maximum(extent, 0.1 * max(float(extent.max()), 1e-6))  # flat tissues
    n_max = max(s.n_cells for s in snapshots)
    return float((np.prod(extent) / n_max) ** (1 / 3))


def relax(
    start: np.ndarray,
    anchor: np.ndarray,
    edge_index: np.ndarray,
    rest: float,
    iterations: int = ITERATIONS,
) -> np.ndarray:
    """A few steps of a spring/repulsion relaxation from ``start``.

    Args:
        start: (N, 3) warm start.
        anchor: (N, 3) the snapshot positions each cell is pulled back to.
        edge_index: (2, E) rows; an edge longer than ``4 · rest`` pulls its ends together.
        rest: the spacing below which two cells push each other apart.

    Returns:
        (N, 3) relaxed positions.
    """
    x = start.astype(float).copy()
    src, dst = edge_index
    for _ in range(iterations):
        force = ANCHOR * (anchor - x)
        pairs = cKDTree(x).query_pairs(rest, output_type="ndarray")  # (P, 2)
        if len(pairs):
            a, b = pairs.T
            delta = x[a] - x[b]
            dist = np.linalg.norm(delta, axis=1, keepdims=True).clip(min=1e-6)
            push = 0.5 * (rest - dist) * delta / dist
            np.add.at(force, a, push)
            np.add.at(force, b, -push)
        if len(src):
            delta = x[dst] - x[src]
            dist = np.linalg.norm(delta, axis=1, keepdims=True).clip(min=1e-6)
            pull = SPRING * np.clip(dist - 4 * rest, 0, None) * delta / dist
            np.add.at(force, src, pull)
            np.add.at(force, dst, -pull)
        x += STEP * np.clip(force, -rest, rest)
    return x


def stable_layout(snapshots: list[Snapshot]) -> list[np.ndarray]:
    """Relaxed positions for every snapshot, warm-started by ``cell_id`` from the one before.

    Returns:
        One (N_k, 3) array per snapshot, rows in the snapshot's row order.
    """
    rest = 0.9 * spacing(snapshots)
    jitter = np.random.default_rng(0)
    layouts: list[np.ndarray] = []
    placed: dict[int, np.ndarray] = {}  # cell_id -> laid-out position
    raw: dict[int, np.ndarray] = {}  # cell_id -> its snapshot position
    for s in snapshots:
        start = _warm_start(s, placed, raw)
        # identical daughters would never separate: a tiny seeded jitter breaks the tie
        start += jitter.normal(scale=1e-3 * rest, size=start.shape)
        x = relax(start, s.cells["pos"], s.edges["edge_index"], rest)
        layouts.append(x)
        placed.update(zip(s.ids.tolist(), x, strict=True))
        raw.update(zip(s.ids.tolist(), s.cells["pos"], strict=True))
    return layouts


def _warm_start(
    s: Snapshot, placed: dict[int, np.ndarray], raw: dict[int, np.ndarray]
) -> np.ndarray:
    """Known cells where they were; newborns beside their parent; others at their ``pos``."""
    pos = s.cells["pos"].astype(float)
    start = pos.copy()
    for i, (cid, parent) in enumerate(zip(s.ids.tolist(), s.cells["parent"].tolist(), strict=True)):
        if cid in placed:
            start[i] = placed[cid]
        elif parent in placed:
            start[i] = placed[parent] + (pos[i] - raw[parent])
    return start
