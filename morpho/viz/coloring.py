"""What ``--color`` paints on the cells: one value per cell per snapshot, and its colour map.

    colors = cell_colors(run, "level")    # ValueError listing the choices on an unknown name
    rgb = colors.rgb(colors.values[0])    # (N, 3) floats in [0, 1] for snapshot 0

Continuous statistics (free energy, gate, birth step) share one range over the whole run
(see :func:`color_range`), so a colour means the same number in every frame; categorical
ones (level, lineage, task) take distinct hues from :data:`PALETTE`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import to_rgb

from morpho.viz.runs import Run, Snapshot, measured

# distinct, saturated hues that read on a dark background (tab10 without its grey and olive)
PALETTE = (
    "#3d8fd9",
    "#ff7f0e",
    "#2ca02c",
    "#e0383a",
    "#9467bd",
    "#17becf",
    "#e377c2",
    "#c49c2a",
    "#8c564b",
)
CMAP_FLOOR = 0.15  # colour maps start here: their darkest end vanishes on the background


def _gate(s: Snapshot) -> np.ndarray:
    # the last forward's mean gate when the trainer stored it, else the scheduler's EMA
    return s.cell("gate_mean") if "gate_mean" in s.cells else s.cell("gate_ema", 0.5)


@dataclass(frozen=True)
class ColorChoice:
    label: str  # legend title
    values: Callable[[Snapshot, dict[int, int]], np.ndarray]  # (snapshot, founders) -> (N,)
    cmap: str = ""  # matplotlib colour map of a continuous statistic; "" for categories
    category: str = ""  # name of a category: "level 0", "seed cell 3", …


CHOICES: dict[str, ColorChoice] = {
    "free-energy": ColorChoice("free energy F (EMA)", lambda s, f: s.cell("fe_ema"), "plasma"),
    "gate": ColorChoice("gate activity", lambda s, f: _gate(s), "viridis"),
    "level": ColorChoice("level", lambda s, f: s.cell("level"), category="level"),
    "lineage": ColorChoice(
        "lineage (founding cell)", lambda s, f: _founder(s, f), category="seed cell"
    ),
    "birth": ColorChoice("birth step", lambda s, f: s.cell("birth"), "cool"),
    "task": ColorChoice("birth task", lambda s, f: s.cell("task"), category="task"),
    # the same field read as the language domain a cell was born for (domain_grow)
    "domain": ColorChoice("birth domain", lambda s, f: s.cell("task"), category="domain"),
    "clock": ColorChoice(
        "clock period (tokens)", lambda s, f: s.cell("clock", 1.0), category="every"
    ),
    "repr-entropy": ColorChoice(
        "KNIFE entropy S (nats / channel)", lambda s, f: s.cell("repr_entropy", 0.0), "magma"
    ),
}


def _founder(s: Snapshot, founders: dict[int, int]) -> np.ndarray:
    return np.array([founders.get(c, c) for c in s.ids.tolist()], dtype=float)


@dataclass(frozen=True)
class CellColors:
    """Per-snapshot values of one colour choice and their mapping to RGB.

    Continuous: ``values`` are the statistic, mapped through ``cmap`` over
    ``[vmin, vmax]``. Categorical: ``values`` are codes ``0 … len(categories) - 1``.
    """

    label: str
    values: list[np.ndarray]
    cmap: str = ""
    vmin: float = 0.0
    vmax: float = 1.0
    categories: tuple[str, ...] = ()

    @property
    def categorical(self) -> bool:
        return not self.cmap

    def rgb(self, values: np.ndarray) -> np.ndarray:
        """(N,) values -> (N, 3) floats in [0, 1]."""
        if self.categorical:
            table = self.table()
            return table[np.asarray(values).round().astype(int) % len(table)]
        return colormaps[self.cmap](self.normalise(values))[:, :3]

    def table(self) -> np.ndarray:
        """(K, 3) one colour per category: :data:`PALETTE`, or evenly spaced hues of a
        rainbow map when there are more categories than it has colours (a tissue grown
        in series can have a dozen levels), so no two categories share a colour."""
        k = len(self.categories)
        if k <= len(PALETTE):
            return np.array([to_rgb(c) for c in PALETTE])
        return colormaps["turbo"](np.linspace(0.08, 0.95, k))[:, :3]

    def normalise(self, values: np.ndarray) -> np.ndarray:
        """Continuous values -> the colour-map coordinate, in ``[CMAP_FLOOR, 1]``."""
        t = (np.asarray(values, dtype=float) - self.vmin) / (self.vmax - self.vmin)
        return CMAP_FLOOR + (1 - CMAP_FLOOR) * np.clip(t, 0, 1)

    def swatches(self) -> list[tuple[str, tuple[float, float, float]]]:
        """(label, rgb) of each category, in code order."""
        table = self.table()
        return [
            (c, tuple(float(v) for v in table[i % len(table)]))  # type: ignore[misc]
            for i, c in enumerate(self.categories)
        ]


def cell_colors(run: Run, name: str) -> CellColors:
    """The values of colour choice ``name`` for every snapshot of ``run``.

    Raises:
        ValueError: ``name`` is not one of :data:`CHOICES`.
    """
    if name not in CHOICES:
        raise ValueError(f"unknown --color {name!r}; expected one of: {', '.join(CHOICES)}")
    choice = CHOICES[name]
    founders = run.founders()
    raw = [choice.values(s, founders) for s in run.snapshots]
    if choice.category:
        keys = np.unique(np.concatenate(raw)).astype(int)
        codes = [np.searchsorted(keys, v) for v in raw]
        names = tuple(f"{choice.category} {k}" for k in keys)
        return CellColors(choice.label, codes, categories=names)
    lo, hi = color_range(raw)
    return CellColors(choice.label, raw, choice.cmap, lo, hi)


def color_range(values: list[np.ndarray]) -> tuple[float, float]:
    """The 2–98 % range of a statistic over the run, outliers clipped.

    Snapshots taken before the statistic was measured (see :func:`~morpho.viz.runs.measured`)
    are left out: the seed's constant would stretch the scale until all cells looked alike.
    """
    kept = [np.asarray(values[k], dtype=float) for k in measured(values)]
    pooled = np.concatenate(kept or [np.zeros(0)])
    pooled = pooled[np.isfinite(pooled)]
    lo, hi = np.percentile(pooled, [2, 98]) if pooled.size else (0.0, 1.0)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    return float(lo), float(hi)
