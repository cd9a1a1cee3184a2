"""The bench's compute curve (``morpho plot <bench dir>``): val bpc against training FLOPs.

    paths = plot_bench("runs/bench-lang-0")     # [<bench>/plots/bpc_vs_flops.png]
    paths = plot_bench("runs/bench-digits-0")   # [<bench>/plots/accuracy_vs_flops.png]

One line per trained row, from the ``flops`` records its run logged at every evaluation
(:class:`morpho.flops.FlopCounter`: cumulative *dense* training FLOPs, every forward of the
scheduler and its probes included), on a log FLOPs axis; rows with no training compute
(the count n-gram) are a dashed horizontal line at their bpc. Read from the bench
directory only: ``bench.json`` and each row's ``metrics.jsonl``. An image bench (its
records carry ``val_acc``) draws validation accuracy instead, on the same axis.

A bench with fixed-size rows (``envelope-<k>x``, beside ``scratch`` at ×1:
``benchmarks/growth_saving.py``) also draws their envelope, a thick grey step line: at each
FLOP count the lowest val bpc any fixed size had reached by then (:func:`envelope_points`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from morpho.files import atomic_path
from morpho.rundir import read_jsonl

STATIC = ("transformer", "gru", "mlp", "gromo")  # dashed-dotted: peers, not morpho rows
# (record key, axis label, file, row figure in the legend) of a language / an image bench
METRICS = {
    "bpc": ("val_bpc", "val bits per character", "bpc_vs_flops.png", "best_val_bpc"),
    "acc": ("val_acc", "val accuracy", "accuracy_vs_flops.png", "final_val_acc"),
}


def is_bench(path: str | os.PathLike[str]) -> bool:
    """True for a directory ``morpho bench`` wrote (it holds ``bench.json``)."""
    return (Path(path) / "bench.json").is_file()


def bench_metric(path: str | os.PathLike[str]) -> str:
    """``"acc"`` for an image bench (its rows report accuracy), else ``"bpc"``."""
    rows = json.loads((Path(path) / "bench.json").read_text())["rows"]
    return "acc" if any("final_val_acc" in r for r in rows) else "bpc"


def bench_curves(path: str | os.PathLike[str]) -> dict[str, list[tuple[float, float]]]:
    """Row name → ``[(dense training FLOPs, val bpc or accuracy), ...]`` in step order;
    ``ValueError`` if the directory is no bench or no row logged a curve."""
    folder = Path(path)
    if not is_bench(folder):
        raise ValueError(f"{str(folder)!r} is not a bench directory; expected a bench.json in it")
    rows = json.loads((folder / "bench.json").read_text())["rows"]
    key = METRICS[bench_metric(folder)][0]
    curves = {}
    for row in rows:
        metrics = folder / row["name"] / "metrics.jsonl"
        records = read_jsonl(metrics) if metrics.is_file() else []
        points = [
            (float(r["dense_train_flops"]), float(r[key]))
            for r in records
            if r.get("kind") == "flops" and r.get(key) is not None
        ]
        if points:
            curves[row["name"]] = points
    if not curves:
        raise ValueError(
            f"no row of {str(folder)!r} logged training FLOPs; expected 'flops' records "
            "in <row>/metrics.jsonl (bench written by an older morpho?)"
        )
    return curves


def envelope_points(
    curves: dict[str, list[tuple[float, float]]],
) -> list[tuple[float, float]]:
    """The fixed-size envelope of a bench's curves: at every FLOP count of an
    ``envelope-*`` row or ``scratch`` (×1), the lowest value any of them had reached by then
    (empty when the bench has no ``envelope-*`` row)."""
    names = [n for n in curves if n.startswith("envelope-")]
    if not names:
        return []
    fixed = [curves[n] for n in (*names, "scratch") if n in curves]
    xs = sorted({x for c in fixed for x, _ in c})
    return [(x, min(y for c in fixed for f, y in c if f <= x)) for x in xs]


def plot_bench(
    path: str | os.PathLike[str], out: str | os.PathLike[str] | None = None, dpi: int = 110
) -> list[Path]:
    """Write ``bpc_vs_flops.png`` (an image bench: ``accuracy_vs_flops.png``) to ``out``
    (default ``<bench>/plots``); returns its path."""
    folder = Path(path)
    curves = bench_curves(folder)
    _, ylabel, filename, figure = METRICS[bench_metric(folder)]
    rows = json.loads((folder / "bench.json").read_text())["rows"]
    fig = Figure(figsize=(8.0, 5.0), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for name, points in curves.items():
        xs, ys = zip(*points, strict=True)
        style = "-." if name.split("-")[0] in STATIC else "-"
        ax.plot(xs, ys, style, marker=".", markersize=4, label=_label(name, rows, figure))
    env = envelope_points(curves)
    if env:
        xs, ys = zip(*env, strict=True)
        ax.plot(
            xs, ys, drawstyle="steps-post", c="0.5", lw=4, alpha=0.5, label="fixed-size envelope"
        )
    for row in rows:
        if row["name"] not in curves and row.get(figure) is not None:
            label = _label(row["name"], rows, figure)
            ax.axhline(row[figure], ls="--", c="0.4", lw=1, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("cumulative dense training FLOPs (forward + backward, probes included)")
    ax.set_ylabel(ylabel)
    ax.set_title(f"{ylabel} against training compute · {folder.name}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    target = (Path(out) if out is not None else folder / "plots") / filename
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png")
    return [target]


def _label(name: str, rows: list[dict[str, Any]], figure: str = "best_val_bpc") -> str:
    row = next(r for r in rows if r["name"] == name)
    size = f"{row['params'] / 1e3:,.0f}k" if row.get("params") else f"order {row.get('order')}"
    word = "best" if figure == "best_val_bpc" else "final"
    value = row.get(figure)
    return f"{name} ({size}, {word} {value:.3f})" if value is not None else f"{name} ({size})"
