"""Read a run directory into tables, for notebooks: ``morpho.load_run``.

    run = morpho.load_run("runs/lang-0")        # pandas DataFrames where pandas is installed
    ev = run.metrics[run.metrics.kind == "eval"]
    ev.plot(x="step", y="val_bpc")
    run.events.kind.value_counts(), run.snapshots[["step", "kind", "cells"]]
    run.config["train"]["lr"], run.summary["val_bpc"]

``metrics`` holds one row per ``metrics.jsonl`` line (``kind`` tells train, eval, flops and
test records apart; a field a record lacks is NaN), ``events`` one per ``events.jsonl``
line, ``snapshots`` one per ``snapshots/step_*.npz`` (its step, the meta it was saved with,
its ``cells`` and ``edges`` counts and its ``file``). ``config`` (``config.toml``) and
``summary`` (``summary.json``, empty while the run is going) are dicts. Without pandas, or
with ``as_frames=False``, the three tables are lists of dicts, one per line or file.

This is the engine's reader (it knows the format :mod:`morpho.rundir` writes and imports
nothing of ``morpho.viz``); ``morpho.viz.runs.load_run`` reads the tissue arrays a movie
needs.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np

from morpho.config import load_toml
from morpho.rundir import read_jsonl, snapshot_paths

# the columns an empty table still has, so ``run.events.kind`` works on a run without events
COLUMNS = {
    "metrics": ("kind", "step"),
    "events": ("step", "kind"),
    "snapshots": ("step", "kind", "cells", "edges", "file"),
}


@dataclass(frozen=True)
class RunRecords:
    """A run directory's logs as tables (see the module docstring).

    Attributes:
        path: the run directory.
        metrics: one row per ``metrics.jsonl`` record.
        events: one row per ``events.jsonl`` record.
        snapshots: one row per snapshot: ``step``, ``file``, ``cells``, ``edges`` and its meta.
        config: ``config.toml`` as a dict (empty if absent).
        summary: ``summary.json`` as a dict (empty if absent).
    """

    path: Path
    metrics: Any
    events: Any
    snapshots: Any
    config: dict[str, Any]
    summary: dict[str, Any]


def load_run(path: str | os.PathLike[str], as_frames: bool | None = None) -> RunRecords:
    """Read the run directory ``path`` (written by ``morpho grow`` or a stream or bench row).

    Args:
        path: a run directory: it holds ``metrics.jsonl``.
        as_frames: True for pandas DataFrames, False for lists of dicts, None (default)
            for DataFrames when pandas is installed.

    Returns:
        A :class:`RunRecords`.

    Raises:
        ValueError: ``path`` is no run directory, a log line is not a JSON object, a
            snapshot cannot be read, or ``as_frames=True`` without pandas.
    """
    p = Path(path)
    if not (p / "metrics.jsonl").is_file():
        raise ValueError(
            f"{str(p)!r} is not a morpho run directory; expected metrics.jsonl inside "
            "(a folder written by morpho grow)"
        )
    frames = _want_frames(as_frames)
    tables = {
        "metrics": read_jsonl(p / "metrics.jsonl"),
        "events": read_jsonl(p / "events.jsonl"),
        "snapshots": [snapshot_row(q) for q in snapshot_paths(p)],
    }
    if frames:
        import pandas as pd

        tables = {
            k: pd.DataFrame(v if v else None, columns=None if v else COLUMNS[k])
            for k, v in tables.items()
        }
    return RunRecords(p, **tables, config=_config(p), summary=read_summary(p))


def snapshot_row(path: Path) -> dict[str, Any]:
    """One snapshot's table row, read without loading its tensors into a tissue."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(z["meta_json"].tobytes().decode())
            cells, edges = int(z["cell_id"].shape[0]), int(z["edge_index"].shape[1])
    except Exception as e:  # noqa: BLE001 - zip, npz, JSON and key errors: one line each
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(
            f"snapshot {str(path)!r} cannot be read ({why}); expected a .npz written by morpho"
        ) from None
    for key in ("next_cell_id", "next_edge_id"):
        meta.pop(key, None)
    return {
        "step": int(meta.pop("step", 0)),
        **meta,
        "cells": cells,
        "edges": edges,
        "file": str(path),
    }


def _want_frames(as_frames: bool | None) -> bool:
    has_pandas = find_spec("pandas") is not None
    if as_frames and not has_pandas:
        raise ValueError(
            "as_frames=True needs pandas (it is not installed); expected pandas installed "
            "(pip install pandas) or as_frames=None/False for lists of dicts"
        )
    return has_pandas if as_frames is None else as_frames


def _config(path: Path) -> dict[str, Any]:
    file = path / "config.toml"
    return load_toml(file) if file.is_file() else {}


def read_summary(path: Path) -> dict[str, Any]:
    """``summary.json`` of the run directory ``path`` (empty if absent); ``ValueError`` if
    it is not a JSON object."""
    file = path / "summary.json"
    if not file.is_file():
        return {}
    try:
        summary = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{str(file)!r} is not valid JSON ({e.msg}); expected a summary") from None
    if not isinstance(summary, dict):
        raise ValueError(f"{str(file)!r} is not a JSON object; expected a summary")
    return summary
