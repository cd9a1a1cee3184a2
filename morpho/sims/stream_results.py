"""What ``morpho stream`` writes beside its runs: per-seed aggregates, paired differences
against replay, the Markdown table, the machine, and the validation split it tunes on."""

from __future__ import annotations

import math
import os
import platform
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from morpho.sims.streams import Stream, StreamTask


def validation_split(stream: Stream, fraction: float) -> tuple[Stream, Stream]:
    """``(fit, val)``: ``fit`` trains on each task's training split less a stratified,
    fixed ``fraction`` of each class (the test split as before); ``val`` has the same
    training splits and that carved part in place of the test split."""
    if not fraction:
        return stream, stream
    fits, vals = [], []
    for t, task in enumerate(stream.tasks):
        keep, held = _carve(task, fraction, t)
        fit = replace(task, x_train=task.x_train[keep], y_train=task.y_train[keep])
        fits.append(fit)
        vals.append(replace(fit, x_test=task.x_train[held], y_test=task.y_train[held]))
    return replace(stream, tasks=tuple(fits)), replace(stream, tasks=tuple(vals))


def _carve(task: StreamTask, fraction: float, t: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices kept for training and held out, per class (text: per task), fixed by ``t``."""
    gen = torch.Generator().manual_seed(1000 + t)
    labels = task.y_train
    held = []
    for c in labels.unique().tolist():
        rows = (labels == c).nonzero()[:, 0]
        rows = rows[torch.randperm(len(rows), generator=gen)]
        held.append(rows[: math.ceil(fraction * len(rows)) if len(rows) > 1 else 0])
    out = torch.zeros(len(labels), dtype=torch.bool)
    out[torch.cat(held)] = True
    return (~out).nonzero()[:, 0], out.nonzero()[:, 0]


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
    for key in ("steps", "memory_floats", "state_floats"):  # counted by morpho's runner
        if all(key in r for r in per_seed):
            out[key] = float(np.mean([r[key] for r in per_seed]))
    out["seeds"] = per_seed
    return out


def add_paired_differences(methods: dict[str, dict[str, Any]], higher_is_better: bool) -> None:
    """Each method's ``vs_replay``: the per-seed differences of its average against replay's
    with the same seed, their mean and sample std (None without replay or its seeds)."""
    ref = methods.get("replay")
    for name, r in methods.items():
        n = min(len(r["seeds"]), len(ref["seeds"])) if ref else 0
        if ref is None or name == "replay" or n == 0:
            r["vs_replay"] = None
            continue
        diffs = np.array(
            [r["seeds"][i]["avg_accuracy"] - ref["seeds"][i]["avg_accuracy"] for i in range(n)]
        )
        std = float(diffs.std(ddof=1)) if n > 1 else 0.0
        r["vs_replay"] = {"mean": float(diffs.mean()), "std": std, "per_seed": diffs.tolist()}


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
        f"| method | avg ({unit}) | Δ avg vs replay (paired) | BWT | FWT | forgetting "
        f"| params after each task | cells (final) | steps | memory floats | s/seed |"
    )
    rows = [head, "|" + "---|" * 11]
    for name, r in results["methods"].items():
        pm = lambda k, r=r: "—" if r[k] is None else f"{r[k]:.2f} ± {r[k + '_std']:.2f}"  # noqa: E731
        vs = r.get("vs_replay")
        delta = "—" if vs is None else f"{vs['mean']:+.2f} ± {vs['std']:.2f}"
        params = " → ".join(f"{p / 1e3:.0f}k" for p in r["params"])
        count = lambda k, r=r: f"{r[k]:.0f}" if k in r else "—"  # noqa: E731  # outside runners
        rows.append(
            f"| {name} | {pm('avg_accuracy')} | {delta} | {pm('bwt')} | {pm('fwt')} "
            f"| {pm('forgetting')} | {params} | {r['cells'][-1]:.0f} | {count('steps')} "
            f"| {count('memory_floats')} | {r['seconds']:.1f} |"
        )
    return "\n".join(rows)
