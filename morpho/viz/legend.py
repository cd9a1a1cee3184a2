"""The key panel beside every movie frame: what colours, rings, sizes and lines mean.

    panel = legend_panel(colors, size_by="params", height=720, width=260)   # (H, W, 3) uint8

Drawn once per movie with matplotlib (Agg) and pasted beside each rendered frame, so a
reader of a single still can tell newborn from dying cells and read the colour scale.
"""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LinearSegmentedColormap
from matplotlib.figure import Figure

from morpho.viz.coloring import CMAP_FLOOR, CellColors
from morpho.viz.timeline import WORMHOLE_LENGTH

BACKGROUND = (0.09, 0.09, 0.105)  # the scene's background, RGB in [0, 1]
TEXT = (0.92, 0.92, 0.92)
EDGE_RGB = (0.82, 0.84, 0.9)  # colour of the strongest edge
WORMHOLE_RGB = (0.25, 0.95, 0.8)  # colour of the strongest wormhole (a long edge)
BORN_RGB = (1.0, 0.9, 0.45)  # ring of a newborn cell
DYING_RGB = (0.95, 0.3, 0.3)  # dashed ring of a dying cell
MAX_SWATCHES = 12
SIZE_LABEL = {"params": "size: parameters", "age": "size: age (steps)"}


def legend_width(width: int) -> int:
    """Pixels of a ``width``-pixel frame given to the key panel (even, for video codecs)."""
    return 2 * round(max(170, 0.21 * width) / 2)


def legend_panel(
    colors: CellColors,
    size_by: str,
    height: int,
    width: int,
    title: str = "",
    wormhole_length: float = WORMHOLE_LENGTH,
) -> np.ndarray:
    """The key as an (height, width, 3) uint8 image on the scene background."""
    dpi = 100
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi, facecolor=BACKGROUND)
    canvas = FigureCanvasAgg(fig)  # no pyplot: no global state, no display
    scale = min(1.0, height / 600, width / 270)
    font = max(6.0, 10 * scale)
    fig.text(0.06, 0.975, title, color=TEXT, fontsize=font * 1.05, weight="bold", va="top")
    fig.text(0.06, 0.93, f"colour: {colors.label}", color=TEXT, fontsize=font, va="top")
    if colors.categorical:
        _swatches(fig, colors, font)
    else:
        _colorbar(fig, colors, font)
    _markers(fig, size_by, font, wormhole_length)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def _swatches(fig: Figure, colors: CellColors, font: float) -> None:
    entries = colors.swatches()
    shown = entries[:MAX_SWATCHES]
    ax = fig.add_axes((0.06, 0.52, 0.9, 0.38))
    ax.set_axis_off()
    ax.set_xlim(0, 1)
    ax.set_ylim(MAX_SWATCHES, -0.5)
    for i, (name, rgb) in enumerate(shown):
        ax.scatter([0.06], [i], s=font * 9, color=rgb, edgecolors="none")
        ax.text(0.16, i, name, color=TEXT, fontsize=font * 0.9, va="center")
    if len(entries) > len(shown):
        ax.text(
            0.16,
            len(shown),
            f"… {len(entries) - len(shown)} more (colours repeat)",
            color=TEXT,
            fontsize=font * 0.8,
            va="center",
        )


def _colorbar(fig: Figure, colors: CellColors, font: float) -> None:
    ax = fig.add_axes((0.08, 0.55, 0.12, 0.34))
    base = colormaps[colors.cmap]
    cmap = LinearSegmentedColormap.from_list("floor", base(np.linspace(CMAP_FLOOR, 1, 64)))
    gradient = np.linspace(1, 0, 128)[:, None]
    ax.imshow(gradient, aspect="auto", cmap=cmap, extent=(0, 1, colors.vmin, colors.vmax))
    ax.set_xticks([])
    ax.yaxis.tick_right()
    ax.tick_params(colors=TEXT, labelsize=font * 0.85)
    for spine in ax.spines.values():
        spine.set_color(TEXT)
    fig.text(0.45, 0.88, "high", color=TEXT, fontsize=font * 0.8, va="top")
    fig.text(0.45, 0.56, "low", color=TEXT, fontsize=font * 0.8, va="bottom")


def _markers(fig: Figure, size_by: str, font: float, wormhole_length: float) -> None:
    """Sample glyphs: newborn ring, dying ring, size, edge brightness, wormhole, up."""
    ax = fig.add_axes((0.04, 0.02, 0.94, 0.44))
    ax.set_axis_off()
    ax.set_xlim(0, 1)
    ax.set_ylim(6.6, -0.6)
    dot = font * 11
    blue = (0.24, 0.56, 0.85)
    ax.scatter([0.09], [0], s=dot, color=blue, lw=0)
    ax.scatter([0.09], [0], s=dot * 2.6, facecolors="none", edgecolors=[BORN_RGB], lw=2)
    ax.scatter([0.09], [1], s=dot, color=(0.5, 0.5, 0.5), alpha=0.6, lw=0)
    ax.scatter(
        [0.09],
        [1],
        s=dot * 2.6,
        facecolors="none",
        edgecolors=[DYING_RGB],
        lw=1.5,
        linestyle=(0, (2, 2)),
    )
    ax.scatter([0.05, 0.13], [2, 2], s=[dot * 0.35, dot * 1.3], color=TEXT, lw=0)
    ax.plot([0.02, 0.09], [3, 3], color=np.array(EDGE_RGB) * 0.35 + np.array(BACKGROUND) * 0.65)
    ax.plot([0.09, 0.16], [3, 3], color=EDGE_RGB)
    ax.plot([0.02, 0.16], [4, 4], color=WORMHOLE_RGB, lw=2.5)
    ax.annotate(
        "", xy=(0.09, 4.6), xytext=(0.09, 5.4), arrowprops={"arrowstyle": "->", "color": TEXT}
    )
    labels = [
        "newborn (yellow ring)",
        "dying (grey, red dashes)",
        SIZE_LABEL[size_by],
        "edge: brighter = stronger",
        f"wormhole: edge > {wormhole_length:g} long",
        "inputs bottom, outputs top",
    ]
    for i, text in enumerate(labels):
        ax.text(0.22, i, text, color=TEXT, fontsize=font * 0.85, va="center")
