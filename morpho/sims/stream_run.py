"""Run methods over a continual-learning stream and write ``results.json``, a table and heatmaps.

    cfg = StreamConfig(stream="split-digits", scenario="class", methods=("morpho", "naive"))
    results = run_stream(cfg, Path("runs/stream"))

The output folder holds ``results.json`` (``{"methods": {name: {"avg_accuracy", "bwt",
"fwt", "forgetting", "params", "cells", "matrix", …}}}``, means over seeds with ``*_std``
and every seed under ``"seeds"``), ``heatmap_<method>.png`` (the mean matrix R) and, for
morpho's methods, a run directory per seed under ``runs/`` (snapshots whose ``task``
field colours cells by the task they were born in: ``morpho render RUN --color task``).
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from morpho.config import dump_toml
from morpho.rundir import RunDir
from morpho.sims.cl_metrics import cl_summary
from morpho.sims.continual import (
    EWC,
    SI,
    Joint,
    LearnConfig,
    Learner,
    LwF,
    Replay,
    Separate,
)
from morpho.sims.morpho_cl import ABLATIONS, MorphoCLConfig, MorphoLearner
from morpho.sims.streams import Stream, build_stream
from morpho.tissue import _atomic_write, atomic_path

BASELINES: dict[str, type[Learner]] = {
    "naive": Learner,
    "ewc": EWC,
    "si": SI,
    "lwf": LwF,
    "replay": Replay,
    "joint": Joint,
    "separate": Separate,
}
METHODS = (*ABLATIONS, *BASELINES)


@dataclass(frozen=True)
class StreamConfig:
    """One ``morpho stream`` invocation."""

    stream: str = "split-digits"  # see morpho.sims.streams.STREAMS
    scenario: str = "class"  # task | domain | class
    tasks: int = 0  # permuted-digits: number of permutations (0: 10)
    methods: tuple[str, ...] = ("morpho", "naive")  # see METHODS
    seeds: int = 1  # seeds per method (0, 1, …)
    data: tuple[str, ...] = ()  # lang-domains: extra text files, one domain each
    max_train: int = 0  # training examples kept per task (0: all; quick runs)
    learn: LearnConfig = field(default_factory=LearnConfig)
    morpho: MorphoCLConfig = field(default_factory=MorphoCLConfig)

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ValueError(
                f"unknown method {unknown[0]!r}; expected one of: {', '.join(METHODS)}"
            )
        if not self.methods:
            raise ValueError(f"no methods given; expected some of: {', '.join(METHODS)}")
        if self.seeds < 1 or self.learn.epochs < 1 or self.learn.memory < 0:
            raise ValueError(
                f"expected seeds >= 1, epochs >= 1, memory >= 0; got {self.seeds}, "
                f"{self.learn.epochs}, {self.learn.memory}"
            )


def make_learner(
    name: str, stream: Stream, learn: LearnConfig, cl: MorphoCLConfig, run: RunDir | None = None
) -> Learner:
    """The learner of a method name (``ValueError`` listing the names otherwise)."""
    if name in ABLATIONS:
        return MorphoLearner(stream, learn, replace(cl, **ABLATIONS[name]), run)
    if name in BASELINES:
        return BASELINES[name](stream, learn)
    raise ValueError(f"unknown method {name!r}; expected one of: {', '.join(METHODS)}")


def run_method(learner: Learner, stream: Stream) -> dict[str, Any]:
    """Train ``learner`` task by task; the matrix, metrics, params and cells after each task."""
    t0 = time.perf_counter()
    baseline = [learner.score(k) for k in stream.tasks]
    matrix, params, cells = [], [], []
    for t, task in enumerate(stream.tasks):
        learner.fit_task(t, task)
        matrix.append([learner.score(k) for k in stream.tasks])
        params.append(learner.n_params())
        cells.append(learner.n_cells())
    if isinstance(learner, Joint):  # trained once at the end: every row is the final model
        matrix = [matrix[-1]] * len(matrix)
        params, cells = [params[-1]] * len(params), [cells[-1]] * len(cells)
    out = cl_summary(matrix, baseline, stream.higher_is_better)
    if isinstance(learner, Joint):
        out["fwt"] = None
    return {
        **out,
        "matrix": matrix,
        "untrained": baseline,
        "params": params,
        "cells": cells,
        "seconds": time.perf_counter() - t0,
    }


def aggregate(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """Means (and ``*_std``, sample std) of the scalar metrics; mean matrix, params, cells."""
    out: dict[str, Any] = {}
    for key in ("avg_accuracy", "bwt", "fwt", "forgetting", "seconds"):
        if any(r[key] is None for r in per_seed):
            out[key] = out[f"{key}_std"] = None
            continue
        values = np.array([r[key] for r in per_seed], dtype=float)
        out[key] = float(values.mean())
        out[f"{key}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    for key in ("matrix", "params", "cells", "untrained"):
        out[key] = np.mean([r[key] for r in per_seed], axis=0).tolist()
    out["seeds"] = per_seed
    return out


def run_stream(
    cfg: StreamConfig, out: Path, echo: Callable[[str], None] = print, stream: Stream | None = None
) -> dict[str, Any]:
    """Run every method of ``cfg`` for every seed; write and return the results.

    ``stream`` is the stream ``cfg`` names, if the caller has built it already.
    """
    stream = stream or build_stream(
        cfg.stream, cfg.scenario, cfg.tasks, cfg.data, max_train=cfg.max_train
    )
    if cfg.learn.device == "cpu":
        torch.set_num_threads(1)  # tiny models are overhead-bound; avoid oversubscribing cores
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "stream": cfg.stream,
        "scenario": cfg.scenario,
        "tasks": [k.name for k in stream.tasks],
        "metric": "accuracy %" if stream.higher_is_better else "bits per character",
        "config": _plain(asdict(cfg)),
        "machine": machine(),
        "methods": {},
    }
    for name in cfg.methods:
        per_seed = []
        for seed in range(cfg.seeds):
            learn = replace(cfg.learn, seed=seed)
            run = _run_dir(out, name, seed, cfg) if name in ABLATIONS else None
            learner = make_learner(name, stream, learn, cfg.morpho, run)
            per_seed.append(run_method(learner, stream))
            r = per_seed[-1]
            echo(
                f"  {name} seed {seed}: avg {r['avg_accuracy']:.2f}, bwt {r['bwt']:.2f}, "
                f"{r['cells'][-1]} cells, {r['seconds']:.1f}s"
            )
        results["methods"][name] = aggregate(per_seed)
        plot_matrix(results["methods"][name]["matrix"], stream, name, out / f"heatmap_{name}.png")
    text = json.dumps(results, indent=2) + "\n"
    _atomic_write(out / "results.json", lambda f: f.write(text.encode()))
    echo(format_table(results))
    return results


def _run_dir(out: Path, name: str, seed: int, cfg: StreamConfig) -> RunDir:
    run = RunDir(out / "runs" / f"{name}-seed{seed}", overwrite=True)
    run.create(dump_toml({"stream": _plain(asdict(cfg))}))
    return run


def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def format_table(results: dict[str, Any]) -> str:
    """The methods as a Markdown table of mean ± std over seeds."""
    unit = results["metric"]
    head = (
        f"| method | avg ({unit}) | BWT | FWT | forgetting | params after each task "
        f"| cells (final) | s/seed |"
    )
    rows = [head, "|" + "---|" * 8]
    for name, r in results["methods"].items():
        pm = lambda k, r=r: "—" if r[k] is None else f"{r[k]:.2f} ± {r[k + '_std']:.2f}"  # noqa: E731
        params = " → ".join(f"{p / 1e3:.0f}k" for p in r["params"])
        rows.append(
            f"| {name} | {pm('avg_accuracy')} | {pm('bwt')} | {pm('fwt')} "
            f"| {pm('forgetting')} | {params} | {r['cells'][-1]:.0f} "
            f"| {r['seconds']:.1f} |"
        )
    return "\n".join(rows)


def plot_matrix(matrix: list[list[float]], stream: Stream, name: str, path: Path) -> None:
    """Heatmap of R[i, j] (after task i, on task j) with the values written in."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = np.asarray(matrix)
    T = len(m)
    fig, ax = plt.subplots(figsize=(1.4 + 0.6 * T, 0.8 + 0.6 * T))
    im = ax.imshow(m, cmap="viridis" if stream.higher_is_better else "viridis_r")
    labels = [k.name for k in stream.tasks]
    ax.set_xticks(range(T), labels, rotation=45, fontsize=7)
    ax.set_yticks(range(T), labels, fontsize=7)
    ax.set_xlabel("evaluated on task j")
    ax.set_ylabel("after training task i")
    for i in range(T):
        for j in range(T):
            r, g, b, _ = im.cmap(im.norm(m[i, j]))
            ink = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"  # luminance
            text = f"{m[i, j]:.0f}" if stream.higher_is_better else f"{m[i, j]:.2f}"
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color=ink)
    ax.set_title(f"{name}: {stream.name} ({stream.scenario})", fontsize=8)
    bar = fig.colorbar(im, ax=ax, shrink=0.8)
    bar.set_label("accuracy %" if stream.higher_is_better else "bits per character", fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
