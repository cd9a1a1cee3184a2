"""The bench's compute curve (``morpho plot <bench dir>``): val bpc against training FLOPs.

    paths = plot_bench("runs/bench-lang-0")     # [<bench>/plots/bpc_vs_flops.png]

One line per trained row, from the ``flops`` records its run logged at every evaluation
(:class:`morpho.flops.FlopCounter`: cumulative *dense* training FLOPs, every forward of the
scheduler and its probes included), on a log FLOPs axis; rows with no training compute
(the count n-gram) are a dashed horizontal line at their bpc. Read from the bench
directory only: ``bench.json`` and each row's ``metrics.jsonl``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from morpho.rundir import read_jsonl
from morpho.tissue import atomic_path

STATIC = ("transformer", "gru")  # drawn dashed-dotted, to tell peers from morpho rows


def is_bench(path: str | os.PathLike[str]) -> bool:
    """True for a directory ``morpho bench`` wrote (it holds ``bench.json``)."""
    return (Path(path) / "bench.json").is_file()


def bench_curves(path: str | os.PathLike[str]) -> dict[str, list[tuple[float, float]]]:
    """Row name → ``[(dense training FLOPs, val bpc), ...]`` in step order; ``ValueError`` if
    the directory is no bench or no row logged a curve."""
    folder = Path(path)
    if not is_bench(folder):
        raise ValueError(f"{str(folder)!r} is not a bench directory; expected a bench.json in it")
    rows = json.loads((folder / "bench.json").read_text())["rows"]
    curves = {}
    for row in rows:
        metrics = folder / row["name"] / "metrics.jsonl"
        records = read_jsonl(metrics) if metrics.is_file() else []
        points = [
            (float(r["dense_train_flops"]), float(r["val_bpc"]))
            for r in records
            if r.get("kind") == "flops" and r.get("val_bpc") is not None
        ]
        if points:
            curves[row["name"]] = points
    if not curves:
        raise ValueError(
            f"no row of {str(folder)!r} logged training FLOPs; expected 'flops' records "
            "in <row>/metrics.jsonl (bench written by an older morpho?)"
        )
    return curves


def plot_bench(
    path: str | os.PathLike[str], out: str | os.PathLike[str] | None = None, dpi: int = 110
) -> list[Path]:
    """Write ``bpc_vs_flops.png`` to ``out`` (default ``<bench>/plots``); returns its path."""
    folder = Path(path)
    curves = bench_curves(folder)
    rows = json.loads((folder / "bench.json").read_text())["rows"]
    fig = Figure(figsize=(8.0, 5.0), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for name, points in curves.items():
        xs, ys = zip(*points, strict=True)
        style = "-." if name.split("-")[0] in STATIC else "-"
        ax.plot(xs, ys, style, marker=".", markersize=4, label=_label(name, rows))
    for row in rows:
        if row["name"] not in curves and row.get("best_val_bpc") is not None:
            ax.axhline(row["best_val_bpc"], ls="--", c="0.4", lw=1, label=_label(row["name"], rows))
    ax.set_xscale("log")
    ax.set_xlabel("cumulative dense training FLOPs (forward + backward, probes included)")
    ax.set_ylabel("val bits per character")
    ax.set_title(f"val bpc against training compute · {folder.name}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    target = (Path(out) if out is not None else folder / "plots") / "bpc_vs_flops.png"
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png")
    return [target]


def _label(name: str, rows: list[dict[str, Any]]) -> str:
    row = next(r for r in rows if r["name"] == name)
    size = f"{row['params'] / 1e3:,.0f}k" if row.get("params") else f"order {row.get('order')}"
    return f"{name} ({size}, best {row['best_val_bpc']:.3f})"
