"""The pictures of a stream run: the accuracy matrix of each method as a heatmap, and every
task's score over the stream, one panel a method (both written by ``morpho stream``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from morpho.tissue import atomic_path


def plot_matrix(matrix: list[list[float]], stream: Any, name: str, path: Path) -> None:
    """Heatmap of R[i, j] (after task i, on task j) with the values written in."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = np.asarray(matrix)
    T = len(m)
    fig, ax = plt.subplots(figsize=(1.4 + 0.6 * T, 0.8 + 0.6 * T))
    higher = stream.kind == "classify"
    im = ax.imshow(m, cmap="viridis" if higher else "viridis_r")
    labels = stream.task_names()
    ax.set_xticks(range(T), labels, rotation=45, fontsize=7)
    ax.set_yticks(range(T), labels, fontsize=7)
    ax.set_xlabel("evaluated on task j")
    ax.set_ylabel("after training task i")
    for i in range(T):
        for j in range(T):
            r, g, b, _ = im.cmap(im.norm(m[i, j]))
            ink = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"  # luminance
            text = f"{m[i, j]:.0f}" if higher else f"{m[i, j]:.2f}"
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color=ink)
    ax.set_title(f"{name}: {stream.name} ({getattr(stream, 'scenario', '')})", fontsize=8)
    bar = fig.colorbar(im, ax=ax, shrink=0.8)
    bar.set_label("accuracy %" if higher else "bits per token", fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def plot_task_curves(results: dict[str, Any], stream: Any, path: Path) -> None:
    """One panel a method: each task's score after every task from its own on (one line a
    task), and the average over the tasks seen so far (dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = results["methods"]
    cols = min(4, len(methods))
    rows = math.ceil(len(methods) / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(2.6 * cols, 2.2 * rows + 0.4), sharey=True, squeeze=False
    )
    T, names = stream.n_tasks, stream.task_names()
    colours = plt.get_cmap("tab10")
    for ax, (name, summary) in zip(axes.flat, methods.items(), strict=False):
        m = np.asarray(summary["matrix"])
        for j in range(T):
            after = np.arange(j, T)
            label = names[j]
            ax.plot(after + 1, m[j:, j], marker="o", ms=3, color=colours(j % 10), label=label)
        seen = [m[i, : i + 1].mean() for i in range(T)]
        ax.plot(np.arange(1, T + 1), seen, "k--", lw=1.2, label="average seen")
        ax.set_title(name, fontsize=8)
        ax.set_xticks(range(1, T + 1))
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(methods) :]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("after training task", fontsize=7)
    unit = "accuracy %" if stream.kind == "classify" else "bits per token"
    for ax in axes[:, 0]:
        ax.set_ylabel(unit, fontsize=7)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(T + 1, 6), fontsize=7)
    scenario = getattr(stream, "scenario", "")
    fig.suptitle(f"each task over the stream: {stream.name} ({scenario})", fontsize=9)
    fig.tight_layout(rect=(0, 0.08, 1, 0.95))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
