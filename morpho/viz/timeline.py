"""The movie's time axis: what is on screen at any point between two snapshots.

    timeline = Timeline(run, color="level", size_by="params")
    state = timeline.frame(2.5)     # halfway from snapshot 2 to snapshot 3

Time ``u`` runs from 0 (first snapshot) to ``K - 1`` (last); every transition gets the
same share of the movie, so each event is seen however unevenly events are spaced in
steps. Between snapshot ``k`` and ``k + 1``, cells present in both move along the stable
layout; a cell that is gone by ``k + 1`` either divides (it is the parent of a newborn: it
shrinks into its daughters, which grow out of its place) or dies (greyed, translucent,
fading out); a newborn wears a ring that fades over the transition after it appeared.
An edge longer than ``wormhole_length`` in its snapshot's ``pos`` (the geometry the wiring
cost charges, not the relaxed layout) is a wormhole and is flagged for drawing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from morpho.viz.coloring import cell_colors
from morpho.viz.layout import spacing, stable_layout
from morpho.viz.runs import Run, Snapshot

SIZE_BY = ("params", "age")
DYING_ALPHA = 0.45  # opacity of a dying cell at the snapshot before it is gone
DYING_GREY = 0.75  # share of grey mixed into a dying cell's colour
EDGE_FLOOR = 0.2  # brightness of a zero-strength edge, relative to the strongest
RADIUS = 0.25  # sphere radius in units of the cell spacing (scaled 0.6–1.4 by size)
WORMHOLE_LENGTH = 4.0  # edges longer than this in pos space are wormholes (the dendrite
# rule's default max_distance)


@dataclass(frozen=True)
class FrameState:
    """Everything one frame draws.

    Shapes:
        ids (M,) cell ids; pos (M, 3), rgb (M, 3), radius (M,), alpha (M,),
        halo (M,) in [0, 1], dying (M,) bool;
        lines (2, F) rows into the cells; edge_weight (F,) in [0, 1] (strength × fade);
        wormhole (F,) bool: the edge is longer than the wormhole length.
    """

    step: int
    ids: np.ndarray
    pos: np.ndarray
    rgb: np.ndarray
    radius: np.ndarray
    alpha: np.ndarray
    halo: np.ndarray
    dying: np.ndarray
    lines: np.ndarray
    edge_weight: np.ndarray
    wormhole: np.ndarray
    n_cells: int
    n_edges: int


def _rows(ids: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Row of each ``query`` id in ``ids``, ``-1`` where absent."""
    if len(ids) == 0:
        return np.full(len(query), -1)
    order = np.argsort(ids)
    at = np.searchsorted(ids, query, sorter=order).clip(max=len(ids) - 1)
    rows = order[at]
    return np.where(ids[rows] == query, rows, -1)


def _smooth(f: float) -> float:
    return f * f * (3 - 2 * f)


class Timeline:
    """Interpolated frame states of a run; see the module docstring."""

    def __init__(
        self,
        run: Run,
        color: str = "free-energy",
        size_by: str = "params",
        wormhole_length: float = WORMHOLE_LENGTH,
    ) -> None:
        if size_by not in SIZE_BY:
            choices = ", ".join(SIZE_BY)
            raise ValueError(f"unknown --size-by {size_by!r}; expected one of: {choices}")
        self.run = run
        self.wormhole_length = wormhole_length
        self.snaps = run.snapshots
        self.colors = cell_colors(run, color)
        self.layouts = stable_layout(self.snaps)
        self.spacing = spacing(self.snaps)
        self.sizes = self._sizes(size_by)
        self.strength_max = max(
            [np.abs(s.edges.get("strength", np.ones(1))).max(initial=0) for s in self.snaps]
            + [1e-9]
        )
        self.first_seen = self._first_seen()

    @property
    def duration(self) -> float:
        """``K - 1``: the time of the last snapshot."""
        return float(len(self.snaps) - 1)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(3,), (3,) corners of the box holding every cell of every frame."""
        pos = np.concatenate([x for x in self.layouts if len(x)] or [np.zeros((1, 3))])
        pad = RADIUS * 1.4 * self.spacing
        return pos.min(axis=0) - pad, pos.max(axis=0) + pad

    def _sizes(self, size_by: str) -> list[np.ndarray]:
        if size_by == "params":
            raw = [s.cell("n_params", 1.0) for s in self.snaps]
        else:  # age: steps since birth
            raw = [s.step - s.cell("birth") for s in self.snaps]
        hi = max(float(np.max(r, initial=0)) for r in raw)
        lo = min(float(np.min(r, initial=hi)) for r in raw)
        return [RADIUS * self.spacing * (0.6 + 0.8 * (r - lo) / max(hi - lo, 1e-9)) for r in raw]

    def _first_seen(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for k, s in enumerate(self.snaps):
            for cid in s.ids.tolist():
                out.setdefault(cid, k)
        return out

    def frame(self, u: float) -> FrameState:
        """The state at time ``u`` in ``[0, duration]``."""
        last = len(self.snaps) - 1
        k = min(int(np.floor(u)), max(last - 1, 0))
        f = float(np.clip(u - k, 0, 1)) if last else 0.0
        b = min(k + 1, last)
        return self._between(k, b, f)

    def _between(self, k: int, b: int, f: float) -> FrameState:
        A, B = self.snaps[k], self.snaps[b]
        ids = np.union1d(A.ids, B.ids)
        ra, rb = _rows(A.ids, ids), _rows(B.ids, ids)
        both, only_a, only_b = (ra >= 0) & (rb >= 0), (ra >= 0) & (rb < 0), (ra < 0) & (rb >= 0)
        e = _smooth(f)
        parents_of_new = set(B.cells["parent"][rb[only_b]].tolist())
        dividing = only_a & np.isin(ids, list(parents_of_new))
        dying = only_a & ~dividing

        pos = np.zeros((len(ids), 3))
        pos[ra >= 0] = self.layouts[k][ra[ra >= 0]]
        target = self.layouts[b][rb[both]]
        pos[both] = (1 - e) * pos[both] + e * target
        start = self._birth_place(A, B, rb[only_b], k)
        pos[only_b] = (1 - e) * start + e * self.layouts[b][rb[only_b]]

        rgb, radius = self._look(k, b, ra, rb, f)
        alpha = np.ones(len(ids))
        alpha[dividing] = np.clip(1 - 2 * f, 0, 1)
        radius[dividing] *= 1 - 0.5 * f
        alpha[dying] = DYING_ALPHA * (1 - f)
        rgb[dying] = (1 - DYING_GREY) * rgb[dying] + DYING_GREY * 0.55
        alpha[only_b] = np.clip(2 * f, 0, 1)
        radius[only_b] *= 0.4 + 0.6 * e
        seen = np.array([self.first_seen[c] for c in ids.tolist()], dtype=int)
        halo = np.where(only_b, 1.0, np.where((seen == k) & (k > 0), 1 - f, 0.0))

        lines, weight, wormhole = self._edges(A, B, ids, f)
        keep = alpha > 0.02
        near = A if f < 0.5 else B
        state = FrameState(
            int(round((1 - f) * A.step + f * B.step)),
            ids,
            pos,
            rgb,
            radius,
            alpha,
            halo,
            dying,
            lines,
            weight,
            wormhole,
            near.n_cells,
            near.n_edges,
        )
        return _drop(state, keep)

    def _birth_place(self, A: Snapshot, B: Snapshot, rows_b: np.ndarray, k: int) -> np.ndarray:
        """Where a newborn starts: its parent's place in ``A``, else its own place in ``B``."""
        start = self.layouts[min(k + 1, len(self.snaps) - 1)][rows_b].copy()
        parent_rows = _rows(A.ids, B.cells["parent"][rows_b])
        has = parent_rows >= 0
        start[has] = self.layouts[k][parent_rows[has]]
        return start

    def _look(self, k: int, b: int, ra: np.ndarray, rb: np.ndarray, f: float):  # type: ignore[no-untyped-def]
        """(M, 3) colours and (M,) radii: interpolated where a cell is in both snapshots."""
        c = self.colors
        va, vb = c.values[k], c.values[b]
        value = _pick(va, ra, vb, rb).astype(float)
        size = _pick(self.sizes[k], ra, self.sizes[b], rb)
        both = (ra >= 0) & (rb >= 0)
        if not c.categorical:
            value[both] = (1 - f) * value[both] + f * vb[rb[both]]
        elif f >= 0.5:
            value[both] = vb[rb[both]]
        size[both] = (1 - f) * size[both] + f * self.sizes[b][rb[both]]
        return c.rgb(value), size

    def _edges(self, A: Snapshot, B: Snapshot, ids: np.ndarray, f: float):  # type: ignore[no-untyped-def]
        """(2, F) rows into ``ids``, (F,) weights (strength, fading in or out with ``f``) and
        (F,) wormhole flags (long in either snapshot).

        An edge is matched across the two snapshots by (edge_id, source id, target id): a
        split hands the mother's edge ids to a daughter, which is a new edge on screen.
        """
        keys = [np.stack([s.edges["edge_id"], *s.edge_ends()], axis=1) for s in (A, B)]
        unique, inverse = np.unique(np.concatenate(keys), axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        in_a, in_b = np.zeros(len(unique)), np.zeros(len(unique))
        wa, wb = np.zeros(len(unique)), np.zeros(len(unique))
        wormhole = np.zeros(len(unique), dtype=bool)
        wormhole[inverse[: A.n_edges]] |= self._long(A)
        wormhole[inverse[A.n_edges :]] |= self._long(B)
        in_a[inverse[: A.n_edges]], wa[inverse[: A.n_edges]] = 1.0, self._weight(A)
        in_b[inverse[A.n_edges :]], wb[inverse[A.n_edges :]] = 1.0, self._weight(B)
        presence = (1 - f) * in_a + f * in_b
        strength = np.where(in_a * in_b > 0, (1 - f) * wa + f * wb, wa + wb)
        keep = presence > 0.02
        lines = np.stack([_rows(ids, unique[keep, 1]), _rows(ids, unique[keep, 2])])
        # a zero-strength edge (just grown) still shows, dimly
        weight = presence * (EDGE_FLOOR + (1 - EDGE_FLOOR) * strength)
        return lines.reshape(2, -1), weight[keep], wormhole[keep]

    def _long(self, s: Snapshot) -> np.ndarray:
        """(E,) bool: edges longer than the wormhole length in the snapshot's ``pos``."""
        src, dst = s.edges["edge_index"]
        pos = s.cells["pos"]
        return np.linalg.norm(pos[src] - pos[dst], axis=-1) > self.wormhole_length

    def _weight(self, s: Snapshot) -> np.ndarray:
        """(E,) |strength| relative to the run's largest; 1 where the snapshot has none."""
        if "strength" not in s.edges:
            return np.ones(s.n_edges)
        return np.clip(np.abs(s.edges["strength"]) / self.strength_max, 0, 1)


def _pick(a: np.ndarray, ra: np.ndarray, b: np.ndarray, rb: np.ndarray) -> np.ndarray:
    """Per row: ``a[ra]`` where ``ra >= 0``, else ``b[rb]``."""
    out = np.empty(len(ra), dtype=np.result_type(a, b))
    out[ra >= 0] = a[ra[ra >= 0]]
    out[ra < 0] = b[rb[ra < 0]]
    return out


def _drop(state: FrameState, keep: np.ndarray) -> FrameState:
    """The state without the cells not in ``keep`` (and their edges), rows renumbered."""
    new_row = np.cumsum(keep) - 1
    ok = keep[state.lines[0]] & keep[state.lines[1]] if state.lines.size else np.zeros(0, bool)
    return FrameState(
        state.step,
        state.ids[keep],
        state.pos[keep],
        state.rgb[keep],
        state.radius[keep],
        state.alpha[keep],
        state.halo[keep],
        state.dying[keep],
        new_row[state.lines[:, ok]],
        state.edge_weight[ok],
        state.wormhole[ok],
        state.n_cells,
        state.n_edges,
    )
