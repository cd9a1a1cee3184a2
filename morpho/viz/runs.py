"""Read a run directory (DESIGN §5) into plain numpy for movies, plots and exports.

    run = load_run("runs/demo")          # ValueError if the folder or its snapshots are missing
    run.snapshots[-1].cells["pos"]       # (N, 3) of the final tissue
    run.metrics, run.events              # the records of metrics.jsonl / events.jsonl

Nothing here needs a live process or pyvista; a snapshot is split into per-cell arrays
(leading size N) and per-edge arrays (``edge_index`` (2, E), ``edge_*``, ``strength``).
For the logs as tables (pandas, in a notebook) use the engine's ``morpho.load_run``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from morpho.rundir import read_jsonl, snapshot_paths
from morpho.tissue import load_snapshot

EDGE_KEYS = ("edge_index", "strength")  # edge fields without the ``edge_`` prefix


@dataclass(frozen=True)
class Snapshot:
    """One tissue snapshot as numpy arrays.

    Shapes:
        cells: name -> (N, ...) per-cell arrays (``pos`` (N, 3), ``cell_id`` (N,), …);
        edges: name -> (E,) per-edge arrays, plus ``edge_index`` (2, E) rows into cells.
    """

    step: int
    meta: dict[str, Any]
    cells: dict[str, np.ndarray]
    edges: dict[str, np.ndarray]

    @property
    def n_cells(self) -> int:
        return int(self.cells["cell_id"].shape[0])

    @property
    def n_edges(self) -> int:
        return int(self.edges["edge_index"].shape[1])

    @property
    def ids(self) -> np.ndarray:
        """(N,) stable cell ids."""
        return self.cells["cell_id"]

    def edge_ends(self) -> tuple[np.ndarray, np.ndarray]:
        """(E,), (E,) the cell ids at the source and target of each edge."""
        src, dst = self.edges["edge_index"]
        return self.ids[src], self.ids[dst]

    def cell(self, name: str, default: float = 0.0) -> np.ndarray:
        """(N,) float values of a per-cell field, ``default`` where the snapshot lacks it."""
        if name in self.cells:
            return self.cells[name].astype(float)
        return np.full(self.n_cells, default)


@dataclass(frozen=True)
class Run:
    """A run directory read into memory: snapshots in step order, metrics, events."""

    path: Path
    snapshots: list[Snapshot]
    metrics: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def steps(self) -> np.ndarray:
        return np.array([s.step for s in self.snapshots])

    def nearest(self, step: int) -> int:
        """Index of the snapshot whose step is nearest ``step`` (the earlier one on a tie)."""
        return int(np.argmin(np.abs(self.steps - step)))

    def metrics_at(self, step: int) -> dict[str, float]:
        """The latest train ``bpc`` (or ``loss``) and eval ``val bpc`` logged by ``step``."""
        out: dict[str, float] = {}
        for r in self.metrics:
            if r.get("step", 0) > step:
                continue
            if r.get("kind") == "train":
                key = "bpc" if r.get("bpc") is not None else "loss"
                if r.get(key) is not None:
                    out[key] = float(r[key])
            elif r.get("kind") == "eval" and r.get("val_bpc") is not None:
                out["val bpc"] = float(r["val_bpc"])
        return out

    def parents(self) -> dict[int, int]:
        """cell_id -> parent cell_id (-1 for seed cells), over every snapshot and event."""
        out: dict[int, int] = {}
        for s in self.snapshots:
            out.update(zip(s.ids.tolist(), s.cells["parent"].tolist(), strict=True))
        for e in self.events:
            if e.get("kind") == "split" and len(e.get("cells", [])) == 1:
                for child in e.get("new_cells", []):
                    out.setdefault(int(child), int(e["cells"][0]))
        return out

    def founders(self) -> dict[int, int]:
        """cell_id -> id of its oldest known ancestor (its lineage)."""
        parents = self.parents()
        out: dict[int, int] = {}
        for cid in parents:
            chain = [cid]
            while parents.get(chain[-1], -1) >= 0 and chain[-1] not in out:
                chain.append(parents[chain[-1]])
            root = out.get(chain[-1], chain[-1])
            out.update(dict.fromkeys(chain, root))
        return out


def measured(values: list[np.ndarray]) -> list[int]:
    """Indices of the snapshots where a per-cell statistic varies between cells (all of them
    if none does): one value in every cell is a statistic not measured yet, like the seed's
    ``fe_ema`` of 0 or ``gate_ema`` of 0.5."""
    varying = [k for k, v in enumerate(values) if len(v) > 1 and np.ptp(v) > 0]
    return varying or list(range(len(values)))


def load_run(path: str | os.PathLike[str]) -> Run:
    """Read a run directory.

    Raises:
        ValueError: the folder does not exist or holds no snapshots.
    """
    p = Path(path)
    paths = require_snapshots(p)
    return Run(
        p,
        [read_snapshot(q) for q in paths],
        read_jsonl(p / "metrics.jsonl"),
        read_jsonl(p / "events.jsonl"),
    )


def require_snapshots(path: str | os.PathLike[str]) -> list[Path]:
    """The run's snapshot files in step order; ``ValueError`` if there is no run or none."""
    p = Path(path)
    if not p.is_dir():
        raise ValueError(
            f"run directory {str(p)!r} does not exist; expected a folder written by morpho grow"
        )
    paths = snapshot_paths(p)
    if not paths:
        raise ValueError(
            f"run directory {str(p)!r} has no snapshots; expected "
            "snapshots/step_*.npz written by morpho grow"
        )
    return paths


def read_tissue(path: str | os.PathLike[str]) -> tuple[Any, dict[str, Any]]:
    """``(tissue, meta)`` of one snapshot file; ``ValueError`` naming the file if it is
    truncated or not a morpho snapshot."""
    try:
        return load_snapshot(path)
    except Exception as e:  # noqa: BLE001 - zip, npz, JSON and key errors: one line each
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(
            f"snapshot {str(path)!r} cannot be read ({why}); expected a .npz written by morpho"
        ) from None


def read_snapshot(path: str | os.PathLike[str]) -> Snapshot:
    """One ``step_*.npz`` as a :class:`Snapshot`."""
    tissue, meta = read_tissue(path)
    n = tissue.num_nodes
    cells, edges = {}, {}
    for key, value in tissue.items():
        if not hasattr(value, "numpy"):
            continue
        if key in EDGE_KEYS or key.startswith("edge_"):
            edges[key] = value.numpy()
        elif value.dim() and value.shape[0] == n:
            cells[key] = value.numpy()
    edges.setdefault("edge_index", np.zeros((2, 0), dtype=np.int64))
    return Snapshot(int(meta.get("step", 0)), meta, cells, edges)
