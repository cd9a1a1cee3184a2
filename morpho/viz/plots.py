"""PNG panels of a run (``morpho plot``): matplotlib (Agg), read from the run directory only.

    paths = plot_run("runs/demo", out="runs/demo/plots")

Writes ``metrics.png`` (train and val bpc with event markers), ``growth.png`` (cells, edges,
parameters), ``free_energy.png`` (the cells' free-energy distribution per snapshot),
``events.png`` (an event raster) and ``lineage.png`` (who divided from whom). A run with no
events (growth off) gets the same files, with "no events" where events would be.

A run whose train records carry the mechanisms' monitors (:data:`MECHANISMS`: Lyapunov exponent,
path norm, ACT pondering) also gets ``mechanisms.png``, one panel per logged field; other runs
do not. Events are drawn per :func:`event_series`: a wormhole ``connect`` (``stats.wormhole``
set) is its own series beside plain connects, and ``insert`` (mitosis in series) its own kind.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from morpho.files import atomic_write
from morpho.rundir import check_out_dir, write_dir
from morpho.tissue import ROLES
from morpho.viz.bench_plot import is_bench, plot_bench
from morpho.viz.coloring import PALETTE
from morpho.viz.runs import Run, load_run, measured

PLOTS = ("metrics", "growth", "free_energy", "events", "lineage")  # written for every run
MECHANISMS = {  # train-record field -> axis label; ``mechanisms.png`` if any is logged
    "lyapunov": "Lyapunov Λ\n(per token)",
    "path_norm": "path norm\n(1-path)",
    "ponder_passes": "ACT passes\nper token",
    "ponder_cost": "ponder cost ρ",
    "repr_entropy": "KNIFE entropy S\n(nats / channel)",
}


def plot_run(
    run_dir: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    dpi: int = 110,
    overwrite: bool = False,
) -> list[Path]:
    """Write every panel of :data:`PLOTS` as ``<out>/<name>.png`` (default ``<run>/plots``),
    and ``mechanisms.png`` when the run logged any of :data:`MECHANISMS`. A bench directory
    gets :func:`morpho.viz.bench_plot.plot_bench` instead (val bpc against training FLOPs).

    The folder is written whole (see :func:`morpho.rundir.write_dir`): a non-empty ``out``
    is refused unless ``overwrite``, and then replaced.
    """
    if is_bench(run_dir):
        return plot_bench(run_dir, out, dpi)
    run = load_run(run_dir)
    folder = Path(out) if out is not None else run.path / "plots"
    check_out_dir(folder, "--out")
    panels: dict[str, Callable[[Figure, Run], None]] = {
        "metrics": _metrics,
        "growth": _growth,
        "free_energy": _free_energy,
        "events": _events,
        "lineage": _lineage,
    }
    size = dict.fromkeys(panels, (8.0, 4.5))
    if fields := mechanism_fields(run.metrics):
        panels["mechanisms"] = _mechanisms
        size["mechanisms"] = (8.0, 1.2 + 1.6 * len(fields))

    def layout(staging: Path) -> None:
        for name, draw in panels.items():
            fig = Figure(figsize=size[name], dpi=dpi, layout="constrained")
            FigureCanvasAgg(fig)
            draw(fig, run)
            atomic_write(staging / f"{name}.png", lambda f, fig=fig: fig.savefig(f, format="png"))

    write_dir(folder, layout, overwrite)
    return [folder / f"{name}.png" for name in panels]


def _series(records: list[dict[str, Any]], kind: str, key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of ``key`` over the ``kind`` records that have it."""
    rows = [
        (r["step"], r[key]) for r in records if r.get("kind") == kind and r.get(key) is not None
    ]
    steps, values = zip(*rows, strict=True) if rows else ((), ())
    return np.array(steps, dtype=float), np.array(values, dtype=float)


def mechanism_fields(records: list[dict[str, Any]]) -> list[str]:
    """The :data:`MECHANISMS` fields that some train record carries, in that order."""
    logged = {k for r in records if r.get("kind") == "train" for k, v in r.items() if v is not None}
    return [k for k in MECHANISMS if k in logged]


def event_series(event: dict[str, Any]) -> str:
    """The series an event is drawn in: its kind, or ``connect (wormhole)`` for a connect
    whose ``stats`` mark it a long-range edge."""
    kind = str(event.get("kind", "?"))
    if kind == "connect" and (event.get("stats") or {}).get("wormhole"):
        return "connect (wormhole)"
    return kind


def event_counts(events: list[dict[str, Any]]) -> dict[str, int]:
    """Series (:func:`event_series`) -> number of events, sorted by series name."""
    counts = Counter(event_series(e) for e in events)
    return dict(sorted(counts.items()))


def _event_kinds(run: Run) -> list[str]:
    return list(event_counts(run.events))


def _kind_color(run: Run, kind: str) -> str:
    return PALETTE[_event_kinds(run).index(kind) % len(PALETTE)]


# (kind, key, label) of the loss curves: a language run's bpc; a classifier's loss in nats
LOSS_SERIES = {
    "bpc": (("train", "bpc", "train bpc"), ("eval", "val_bpc", "val bpc")),
    "acc": (("train", "loss", "train loss"), ("eval", "val_loss", "val loss")),
}


def _metrics(fig: Figure, run: Run) -> None:
    ax = fig.add_subplot()
    classify = len(_series(run.metrics, "eval", "val_acc")[0]) > 0
    for kind, key, label in LOSS_SERIES["acc" if classify else "bpc"]:
        steps, values = _series(run.metrics, kind, key)
        if len(steps):
            ax.plot(steps, values, label=label, marker="o" if kind == "eval" else None, ms=3)
    _mark_events(ax, run, label=True)
    ylabel = "cross-entropy (nats)" if classify else "bits per character"
    ax.set(xlabel="step", ylabel=ylabel, title="Loss, with topology events")
    if classify:  # accuracy on its own axis, beside the losses
        acc = ax.twinx()
        steps, values = _series(run.metrics, "eval", "val_acc")
        acc.plot(steps, values, "k--", marker="s", ms=3, label="val accuracy")
        acc.set_ylabel("val accuracy")
        acc.legend(loc="center right", fontsize=8)
    _legend_or_note(ax, "no metrics logged")


def _mark_events(ax: Any, run: Run, label: bool = False) -> None:
    """Events as ticks in a band per series along the top of the axes (so series on the same
    step stay visible side by side), over a faint full-height line at each event step;
    wormholes dashed. ``label``: one legend entry per series, with its count."""
    counts = event_counts(run.events)
    band = min(0.06, 0.3 / max(len(counts), 1))  # axes fraction per series
    all_steps = sorted({e["step"] for e in run.events})
    if all_steps:
        ax.vlines(all_steps, 0, 1, transform=ax.get_xaxis_transform(), color="0.6", alpha=0.25)
    for k, (kind, count) in enumerate(counts.items()):
        steps = sorted({e["step"] for e in run.events if event_series(e) == kind})
        ax.vlines(
            steps,
            1 - (k + 1) * band,
            1 - k * band,
            transform=ax.get_xaxis_transform(),
            color=_kind_color(run, kind),
            lw=2.0,
            ls="--" if "wormhole" in kind else "-",
            label=f"{kind} events ({count})" if label else None,
        )


def _growth(fig: Figure, run: Run) -> None:
    """Cells, edges and parameters over time, one panel each (their scales differ)."""
    axes = fig.subplots(3, 1, sharex=True)
    for ax, key in zip(axes, ("cells", "edges", "params"), strict=True):
        steps, values = _series(run.metrics, "train", key)
        if not len(steps) and key != "params":  # no train records: count the snapshots
            steps, values = run.steps, np.array([getattr(s, f"n_{key}") for s in run.snapshots])
        ax.plot(steps, values, drawstyle="steps-post", color=PALETTE[0])
        ax.set_ylabel("parameters" if key == "params" else key)
        _mark_events(ax, run, label=ax is axes[0])
    axes[0].set_title("Size of the tissue, with topology events")
    axes[-1].set_xlabel("step")
    _legend_or_note(axes[0], "")


def _free_energy(fig: Figure, run: Run) -> None:
    """Median, 25–75 % and 5–95 % bands of ``fe_ema`` over the cells of each snapshot
    (snapshots taken before F was measured left out)."""
    ax = fig.add_subplot()
    values = [s.cell("fe_ema") for s in run.snapshots]
    keep = measured(values)
    steps, values = run.steps[keep], [values[k] for k in keep]
    q = np.array(
        [np.percentile(v, [5, 25, 50, 75, 95]) if len(v) else [np.nan] * 5 for v in values]
    )
    ax.fill_between(steps, q[:, 0], q[:, 4], alpha=0.2, color=PALETTE[1], label="5–95 %")
    ax.fill_between(steps, q[:, 1], q[:, 3], alpha=0.4, color=PALETTE[1], label="25–75 %")
    ax.plot(steps, q[:, 2], color=PALETTE[3], marker=".", label="median")
    ax.set(
        xlabel="step (snapshots)",
        ylabel="free energy F (EMA)",
        title="Free energy of the cells over time",
    )
    ax.legend(loc="best")


def _events(fig: Figure, run: Run) -> None:
    """One row per series (:func:`event_series`, with its count); a tick per step with events,
    sized by how many cells they touched."""
    ax = fig.add_subplot()
    counts = event_counts(run.events)
    kinds = list(counts)
    for y, kind in enumerate(kinds):
        touched: dict[int, int] = {}
        for e in run.events:
            if event_series(e) == kind:
                n = len(e.get("cells", [])) + len(e.get("new_cells", []))
                touched[e["step"]] = touched.get(e["step"], 0) + max(n, 1)
        ax.scatter(
            list(touched),
            [y] * len(touched),
            s=[40 + 25 * n for n in touched.values()],
            marker="|",
            color=_kind_color(run, kind),
            linewidths=2,
        )
    ax.set_yticks(range(len(kinds)), [f"{k} ({n})" for k, n in counts.items()])
    ax.set_ylim(-0.7, max(len(kinds), 1) - 0.3)
    ax.set(
        xlabel="step", title=f"Topology events ({len(run.events)} in all; tick size: cells touched)"
    )
    ax.set_xlim(run.steps.min() - 1, run.steps.max() + 1)
    if not kinds:
        ax.text(0.5, 0.5, "no events (growth off)", ha="center", transform=ax.transAxes)


def _mechanisms(fig: Figure, run: Run) -> None:
    """One panel per logged :data:`MECHANISMS` field against step; Λ = 0 dashed (the edge of
    chaos: Λ < 0 forgets perturbations, Λ > 0 amplifies them)."""
    fields = mechanism_fields(run.metrics)
    axes = fig.subplots(len(fields), 1, sharex=True, squeeze=False)[:, 0]
    for ax, key in zip(axes, fields, strict=True):
        steps, values = _series(run.metrics, "train", key)
        ax.plot(steps, values, color="0.15", marker=".", ms=3, lw=1.2)  # dark: events are hues
        ax.set_ylabel(MECHANISMS[key], fontsize=9)
        _mark_events(ax, run, label=ax is axes[-1])
        if key == "lyapunov":
            ax.axhline(0.0, color="0.3", ls="--", lw=1.2, label="edge of chaos (Λ = 0)")
    axes[0].set_title("Mechanisms: criticality, path norm, pondering")
    axes[-1].set_xlabel("step")
    legend = {lab: h for ax in axes for h, lab in zip(*ax.get_legend_handles_labels(), strict=True)}
    if legend:
        fig.legend(
            legend.values(),
            legend.keys(),
            loc="outside lower center",
            ncols=min(len(legend), 4),
            fontsize=8,
            frameon=False,
        )


def _lineage(fig: Figure, run: Run) -> None:
    """Each cell a horizontal bar from birth to death (or the end), tied to its parent."""
    ax = fig.add_subplot()
    life = _lifetimes(run)
    parents, founders = run.parents(), run.founders()
    mothers = set(parents.values())
    order = _tree_order(parents, list(life))
    row = {cid: i for i, cid in enumerate(order)}
    roots = sorted(set(founders.values()))
    for cid in order:
        born, gone, alive = life[cid]
        color = PALETTE[roots.index(founders.get(cid, cid)) % len(PALETTE)]
        ax.plot(
            [born, gone],
            [row[cid]] * 2,
            color=color,
            lw=1.2 if alive else 0.8,
            alpha=1.0 if alive else 0.5,
        )
        mother = parents.get(cid, -1)
        if mother in row:
            ax.plot([born, born], [row[mother], row[cid]], color=color, lw=0.5, alpha=0.6)
        if not alive and cid not in mothers:  # gone without daughters: it died
            ax.plot([gone], [row[cid]], "x", color=color, ms=5)
    ax.set(
        xlabel="step",
        ylabel="cell id (role), grouped by lineage",
        title=f"Lineage: {len(life)} cells from {len(roots)} founders (faded: divided, ×: died)",
    )
    roles = _roles(run)
    every = max(1, len(order) // 40)  # at most ~40 labels stay readable
    ticks = order[::every]
    ax.set_yticks(
        [row[c] for c in ticks], [f"{c} ({roles.get(c, '?')})" for c in ticks], fontsize=6
    )
    ax.invert_yaxis()  # founders on top, daughters below their mothers


def _roles(run: Run) -> dict[int, str]:
    """cell_id -> role name (input / hidden / output) from the snapshots."""
    out: dict[int, str] = {}
    for s in run.snapshots:
        if "role" in s.cells:
            for cid, r in zip(s.ids.tolist(), s.cells["role"].tolist(), strict=True):
                out[cid] = ROLES[int(r)] if 0 <= int(r) < len(ROLES) else str(r)
    return out


def _lifetimes(run: Run) -> dict[int, tuple[int, int, bool]]:
    """cell_id -> (birth step, step it was gone by or the last step, alive at the end)."""
    out: dict[int, tuple[int, int, bool]] = {}
    final = set(run.snapshots[-1].ids.tolist())
    previous: set[int] = set()
    for s in run.snapshots:
        ids = s.ids.tolist()
        for cid in previous - set(ids):  # gone by this snapshot
            out[cid] = (out[cid][0], s.step, False)
        for cid, born in zip(ids, s.cells["birth"].tolist(), strict=True):
            out[cid] = (out.get(cid, (int(born),))[0], s.step, cid in final)
        previous = set(ids)
    return out


def _tree_order(parents: dict[int, int], cells: list[int]) -> list[int]:
    """Cells in depth-first order of the lineage forest, so sisters sit together."""
    children: dict[int, list[int]] = {}
    known = set(cells)
    for cid in sorted(known):
        children.setdefault(
            parents.get(cid, -1) if parents.get(cid, -1) in known else -1, []
        ).append(cid)
    order: list[int] = []
    stack = list(reversed(children.get(-1, [])))
    while stack:
        cid = stack.pop()
        order.append(cid)
        stack.extend(reversed(children.get(cid, [])))
    return order


def _legend_or_note(ax: Any, note: str) -> None:
    """A legend below the axes (it never hides a curve), or ``note`` if nothing is drawn."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.figure.legend(
            handles,
            labels,
            loc="outside lower center",
            ncols=min(len(labels), 6),
            fontsize=8,
            frameon=False,
        )
    elif note:
        ax.text(0.5, 0.5, note, ha="center", transform=ax.transAxes)
