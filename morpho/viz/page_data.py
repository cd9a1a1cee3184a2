"""The data of the interactive growth page: a run packed into compact, JSON-ready arrays.

    payload = page_payload(run)    # dict of plain lists, numbers and base64 typed arrays

The page draws what the movie draws at each snapshot: the movie's stable layout
(:func:`~morpho.viz.layout.stable_layout` through :class:`~morpho.viz.timeline.Timeline`),
its sphere radii, edge weights and wormhole flags, and every ``--color`` choice coloured by
:mod:`morpho.viz.coloring` (a continuous statistic as an index into a 256-entry table of its
colour map over the run's range, a category as a code into its palette), so a colour on the
page means what it means in the movie.

Encoding (``T`` = cells summed over snapshots, ``E`` = edges summed over snapshots): a global
cell table (one row per cell id ever seen); per snapshot, offsets into flat arrays of
``T`` rows (index into the cell table, position quantised to uint16 in the run's bounding
box, radius as uint8, statistics as float32, colour codes as uint8/uint16); each edge once,
as a run of consecutive snapshots (:func:`edge_runs`), and per snapshot and edge a uint8 of
weight · 127 + 128 · wormhole (``E`` of them).
Typed arrays travel as base64 of their little-endian bytes (``{"b64", "dtype"}``).
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import torch
from matplotlib import colormaps
from torch_geometric.data import Data

from morpho.cells import binary_entropy
from morpho.energy import wiring_cost
from morpho.viz.coloring import CHOICES, CMAP_FLOOR, CellColors, cell_colors
from morpho.viz.legend import BACKGROUND, EDGE_RGB, WORMHOLE_RGB
from morpho.viz.runs import Run, Snapshot
from morpho.viz.timeline import WORMHOLE_LENGTH, Timeline

LUT_SIZE = 256  # entries of a continuous colour map's table
STATS = ("F", "U", "S", "W", "gate")  # per-cell statistics shown on hover


def typed(values: np.ndarray, dtype: str) -> dict[str, str]:
    """A typed array for the page: base64 of its little-endian bytes and its dtype name."""
    raw = np.ascontiguousarray(values, dtype=np.dtype(dtype).newbyteorder("<")).tobytes()
    return {"b64": base64.b64encode(raw).decode("ascii"), "dtype": dtype}


def page_payload(run: Run, wormhole_length: float = WORMHOLE_LENGTH) -> dict[str, Any]:
    """Everything the page shows of ``run``; see the module docstring for the encoding."""
    timeline = Timeline(run, "free-energy", "params", wormhole_length)
    snaps = run.snapshots
    ids = np.unique(np.concatenate([s.ids for s in snaps]))  # the cell table, id order
    events = _events(run, snaps)
    lo, hi = timeline.bounds()
    return {
        "run": run.path.resolve().name,
        "steps": [s.step for s in snaps],
        "nCells": [s.n_cells for s in snaps],
        "nEdges": [s.n_edges for s in snaps],
        "bounds": [lo.tolist(), hi.tolist()],
        "cells": _cell_table(run, ids, events),
        "snap": _snapshot_arrays(timeline, ids, lo, hi),
        "colors": {name: _colors(cell_colors(run, name)) for name in CHOICES},
        "events": events,
        "metrics": _metrics(run),
        "theme": {
            "background": list(BACKGROUND),
            "edge": list(EDGE_RGB),
            "wormhole": list(WORMHOLE_RGB),
        },
    }


def _cell_table(run: Run, ids: np.ndarray, events: list[dict[str, Any]]) -> dict[str, Any]:
    """Per cell id: level, role, birth, parent, and the event that made it (-1: seed)."""
    fields: dict[str, dict[int, int]] = {k: {} for k in ("level", "role", "birth", "parent")}
    for s in run.snapshots:
        for k, table in fields.items():
            table.update(zip(s.ids.tolist(), s.cells[k].tolist(), strict=True))
    made_by: dict[int, int] = {}
    for index, e in enumerate(events):
        for cid in e.get("new_cells", []):
            made_by.setdefault(int(cid), index)
    out: dict[str, Any] = {"id": ids.tolist()}
    for k, table in fields.items():
        out[k] = [int(table[c]) for c in ids.tolist()]
    out["madeBy"] = [made_by.get(c, -1) for c in ids.tolist()]
    return out


def _snapshot_arrays(
    timeline: Timeline, ids: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> dict[str, Any]:
    snaps = timeline.snaps
    scale = np.maximum(hi - lo, 1e-9)
    rows = np.concatenate([np.searchsorted(ids, s.ids) for s in snaps])
    pos = np.concatenate(timeline.layouts)
    radius = np.concatenate(timeline.sizes)
    r_max = float(radius.max(initial=0)) or 1.0
    runs, order = edge_runs(snaps, ids)
    weight = np.concatenate([timeline._weight(s)[o] for s, o in zip(snaps, order, strict=True)])
    long = np.concatenate([timeline._long(s)[o] for s, o in zip(snaps, order, strict=True)])
    big = len(ids) > 65535 or max(s.n_cells for s in snaps) > 65535
    stats = [_stats(s) for s in snaps]
    return {
        "cellOffset": np.cumsum([0] + [s.n_cells for s in snaps]).tolist(),
        "edgeOffset": np.cumsum([0] + [s.n_edges for s in snaps]).tolist(),
        "cell": typed(rows, "uint32" if big else "uint16"),
        "pos": typed(np.round((pos - lo) / scale * 65535).reshape(-1), "uint16"),
        "posLo": lo.tolist(),
        "posScale": (scale / 65535).tolist(),
        "radius": typed(np.round(radius / r_max * 255), "uint8"),
        "radiusMax": r_max,
        "edgeRuns": {
            k: typed(v, "uint32" if max(len(ids), len(snaps)) > 65535 else "uint16")
            for k, v in runs.items()
        },
        "edgeStyle": typed(np.round(weight * 127) + 128 * long, "uint8"),
        "stats": {k: typed(np.concatenate([s[k] for s in stats]), "float32") for k in STATS},
    }


def edge_runs(snaps: list[Snapshot], ids: np.ndarray) -> tuple[dict[str, np.ndarray], list]:
    """The edges of every snapshot as runs: an edge (``edge_id``, source id, target id, the
    timeline's identity of an edge) present in snapshots ``first … last`` in a row is one
    run, so the page stores each edge once, not once per snapshot.

    Returns:
        ``{"src", "dst"}`` (R,) cell-table rows of each run's ends, ``{"first", "last"}``
        (R,) its snapshots; and per snapshot the order of its edges by run, the order the
        page lists a snapshot's edges in (its runs with ``first <= k <= last``, ascending).
    """
    src: list[int] = []
    dst: list[int] = []
    first: list[int] = []
    last: list[int] = []
    before: dict[tuple[int, int, int], int] = {}  # runs of the previous snapshot
    order = []
    for k, s in enumerate(snaps):
        a, b = (np.searchsorted(ids, end) for end in s.edge_ends())
        now: dict[tuple[int, int, int], int] = {}
        run_of = np.empty(s.n_edges, dtype=np.int64)
        keys = zip(s.edges["edge_id"].tolist(), a.tolist(), b.tolist(), strict=True)
        for j, key in enumerate(keys):
            r = before.get(key, -1)
            if r < 0 or key in now:
                r = len(first)
                src.append(key[1])
                dst.append(key[2])
                first.append(k)
                last.append(k)
            last[r], now[key], run_of[j] = k, r, r
        before = now
        order.append(np.argsort(run_of, kind="stable"))
    runs = {"src": src, "dst": dst, "first": first, "last": last}
    return {k: np.array(v, dtype=np.int64) for k, v in runs.items()}, order


def _stats(s: Snapshot) -> dict[str, np.ndarray]:
    """(N,) each of F (``fe_ema``), U (``surprise_ema``), S (the binary entropy of the gate
    EMA: a snapshot keeps no running mean of the per-token entropy the F term averages),
    W (the wiring cost of :func:`morpho.energy.wiring_cost`), and the gate EMA."""
    gate = s.cell("gate_ema", 0.5)
    entropy = binary_entropy(torch.from_numpy(gate)).numpy()
    tissue = Data(
        pos=torch.from_numpy(s.cells["pos"]).float(),
        edge_index=torch.from_numpy(s.edges["edge_index"]).long(),
        num_nodes=s.n_cells,
    )
    return {
        "F": s.cell("fe_ema"),
        "U": s.cell("surprise_ema"),
        "S": entropy,
        "W": wiring_cost(tissue).numpy(),
        "gate": gate,
    }


def _colors(colors: CellColors) -> dict[str, Any]:
    """One colour choice: codes per cell row into its table (a colour map or a palette)."""
    values = np.concatenate(colors.values) if colors.values else np.zeros(0)
    if colors.categorical:
        table = colors.table()
        codes = np.round(values).astype(int) % len(table)
        labels = [name for name, _ in colors.swatches()]
    else:
        grid = CMAP_FLOOR + (1 - CMAP_FLOOR) * np.linspace(0, 1, LUT_SIZE)
        table = colormaps[colors.cmap](grid)[:, :3]
        t = (colors.normalise(values) - CMAP_FLOOR) / (1 - CMAP_FLOOR)
        codes = np.round(np.nan_to_num(t) * (LUT_SIZE - 1)).astype(int)
        labels = []
    return {
        "label": colors.label,
        "categorical": colors.categorical,
        "vmin": colors.vmin,
        "vmax": colors.vmax,
        "table": np.round(table * 255).astype(int).reshape(-1).tolist(),
        "labels": labels,
        "codes": typed(codes, "uint16" if len(table) > 255 else "uint8"),
    }


def _events(run: Run, snaps: list[Snapshot]) -> list[dict[str, Any]]:
    """The events, each with ``snap``: the first snapshot that shows it."""
    steps = np.array([s.step for s in snaps])
    out: list[dict[str, Any]] = []
    for e in run.events:
        step = int(e.get("step", 0))
        k = min(int(np.searchsorted(steps, step)), len(snaps) - 1)
        keep: dict[str, Any] = {
            key: e[key] for key in ("kind", "cells", "new_cells", "reason", "score") if key in e
        }
        out.append({"step": step, "snap": k, **keep})
    return out


def _metrics(run: Run) -> dict[str, list[list[float]]]:
    """``[step, value]`` series: train loss, eval loss (val_loss), and cells per snapshot."""
    loss = [
        [r["step"], float(r["loss"])]
        for r in run.metrics
        if r.get("kind") == "train" and isinstance(r.get("loss"), (int, float))
    ]
    val = [
        [r["step"], float(r["val_loss"])]
        for r in run.metrics
        if r.get("kind") == "eval" and isinstance(r.get("val_loss"), (int, float))
    ]
    cells = [[s.step, s.n_cells] for s in run.snapshots]
    return {"loss": loss, "val": val, "cells": cells}
