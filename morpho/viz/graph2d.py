"""A flat picture of one tissue snapshot: levels as rows, edges as lines (matplotlib, Agg).

    image = tissue_image(read_snapshot(path), "step 400: split", since=350)  # (H, W, 3) uint8

Cells sit on the row of their level (inputs at the bottom), ordered along the row by their
``pos`` x; each is coloured by its free-energy EMA where the snapshot measured one (cells
differ), else by role; edges are drawn with an opacity that follows ``|strength|``. Cells
born after step ``since`` (the previous snapshot's) are ringed. Used for the tissue image at
each event in TensorBoard (:mod:`morpho.viz.tensorboard`), where a 3D frame would cost more.
"""

from __future__ import annotations

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from morpho.tissue import ROLES
from morpho.viz.runs import Snapshot

ROLE_COLORS = ("#4c72b0", "#8c8c8c", "#dd8452")  # input, hidden, output (ROLES order)


def flat_positions(s: Snapshot) -> np.ndarray:
    """(N, 2) positions: x spread evenly along the level's row in ``pos`` x order, y the level."""
    level = s.cells["level"].astype(int)
    xy = np.zeros((s.n_cells, 2))
    for lvl in np.unique(level):
        rows = np.flatnonzero(level == lvl)
        order = rows[np.argsort(s.cells["pos"][rows, 0], kind="stable")]
        xy[order, 0] = (np.arange(len(order)) + 0.5) / len(order)
        xy[order, 1] = lvl
    return xy


def draw_tissue(fig: Figure, s: Snapshot, title: str = "", since: int | None = None) -> None:
    """Draw ``s`` on ``fig``: edges, then cells coloured by free energy (or role), those
    born after step ``since`` ringed (None: none). Fixed margins: a layout engine would
    cost more than the drawing, and this runs at every growth round of a live run."""
    ax = fig.add_axes((0.08, 0.11, 0.72, 0.8))
    xy = flat_positions(s)
    src, dst = s.edges["edge_index"]
    strength = np.abs(s.edges.get("strength", np.ones(len(src)))).astype(float)
    alpha = 0.15 + 0.7 * strength / strength.max() if len(src) and strength.max() > 0 else None
    lines = LineCollection(list(np.stack([xy[src], xy[dst]], 1)), colors="#555555", linewidths=0.6)
    if alpha is not None:
        lines.set_alpha(alpha)
    ax.add_collection(lines)
    fe = s.cell("fe_ema")
    widest = int(np.bincount(s.cells["level"].astype(int)).max())
    size = float(np.clip(40 * 20 / widest, 4, 40))  # dots shrink on a crowded row
    if len(fe) > 1 and np.ptp(fe) > 0:
        dots = ax.scatter(
            xy[:, 0], xy[:, 1], c=fe, cmap="viridis", s=size, zorder=2, edgecolors="none"
        )
        fig.colorbar(dots, cax=fig.add_axes((0.83, 0.15, 0.025, 0.7)), label="free energy (EMA)")
    else:
        for role, (name, color) in enumerate(zip(ROLES, ROLE_COLORS, strict=True)):
            at = s.cells["role"] == role
            ax.scatter(
                xy[at, 0], xy[at, 1], c=color, s=size, zorder=2, edgecolors="none", label=name
            )
        ax.legend(loc="upper left", bbox_to_anchor=(1, 1), fontsize=7, frameon=False)
    new = s.cells["birth"] > (since if since is not None else np.inf)
    ax.scatter(
        xy[new, 0],
        xy[new, 1],
        s=3 * size,
        facecolors="none",
        edgecolors="crimson",
        lw=1.2,
        zorder=3,
    )
    ax.set(xlim=(0, 1), ylabel="level", xticks=[], title=title)
    ax.set_yticks(np.unique(s.cells["level"]))
    ax.margins(y=0.1)
    ax.set_xlabel(f"{s.n_cells} cells, {s.n_edges} edges (ringed: born since the last one)")


def tissue_image(
    s: Snapshot,
    title: str = "",
    since: int | None = None,
    size: tuple[float, float] = (6.4, 4.0),
) -> np.ndarray:
    """(H, W, 3) uint8 RGB picture of ``s`` (see :func:`draw_tissue`), at 80 dpi."""
    fig = Figure(figsize=size, dpi=80)
    canvas = FigureCanvasAgg(fig)
    draw_tissue(fig, s, title, since)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
