"""The plots say what they draw: every event series keeps a visible mark of its own on a
step it shares with another series, ``growth.png`` has a legend of its event lines,
``lineage.png`` labels its rows with cell ids and roles, and the stream heatmap labels its
colour bar and writes each number in an ink that contrasts with its cell."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from morpho.viz import plots  # noqa: E402
from morpho.viz.runs import Run, load_run  # noqa: E402
from morpho.viz.synthetic import synthetic_run  # noqa: E402


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    loaded = load_run(synthetic_run(tmp_path_factory.mktemp("legible") / "run", n_cells=20))
    step = loaded.events[0]["step"]  # two more series on the first event's step
    extra = [{"step": step, "kind": k, "cells": [0]} for k in ("remove", "prune")]
    return Run(loaded.path, loaded.snapshots, loaded.metrics, [*loaded.events, *extra])


def _figure(draw, run: Run) -> Figure:  # type: ignore[no-untyped-def]
    fig = Figure(figsize=(8, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    draw(fig, run)
    return fig


def test_each_event_series_has_its_own_band_on_a_shared_step(run: Run) -> None:
    fig = _figure(plots._metrics, run)
    ax = fig.axes[0]
    bands = {}
    for c in ax.collections:
        if isinstance(c, LineCollection) and c.get_label() and "events" in c.get_label():
            ys = {tuple(np.round(seg[:, 1], 6)) for seg in c.get_segments()}
            bands[c.get_label()] = ys
    assert len(bands) == len(plots.event_counts(run.events)) >= 3
    spans = [next(iter(v)) for v in bands.values()]
    assert len(set(spans)) == len(spans), "two series share a band: one hides the other"
    labels = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert all(any(k in lab for lab in labels) for k in ("remove", "prune"))


def test_growth_plot_has_a_legend_of_its_events(run: Run) -> None:
    fig = _figure(plots._growth, run)
    labels = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert labels and all("events" in lab for lab in labels)


def test_lineage_rows_are_labelled_with_ids_and_roles(run: Run) -> None:
    fig = _figure(plots._lineage, run)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels and any("(input)" in lab for lab in labels)
    assert any("(output)" in lab for lab in labels) and any("(hidden)" in lab for lab in labels)


def test_heatmap_labels_its_colour_bar_and_contrasts_its_numbers(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    from morpho.sims.stream_plots import plot_matrix
    from morpho.sims.stream_task import StreamOnTrainer
    from morpho.sims.streams import build_stream

    built = build_stream("split-digits", "class", max_train=4)
    stream = StreamOnTrainer(built, built, steps_per_task=1)
    matrix = np.linspace(0, 100, 25).reshape(5, 5).tolist()
    captured = {}
    close = plt.close
    plt.close = lambda fig=None: captured.setdefault("fig", fig)  # keep it to inspect
    try:
        plot_matrix(matrix, stream, "naive", tmp_path / "h.png")
    finally:
        plt.close = close
    fig = captured["fig"]
    ax, bar = fig.axes
    assert bar.get_ylabel() == "accuracy %"
    ink = {t.get_text(): t.get_color() for t in ax.texts}
    assert ink["0"] == "white" and ink["100"] == "black"  # dark purple vs bright yellow
    close(fig)
    assert (tmp_path / "h.png").is_file()
