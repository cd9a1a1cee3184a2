"""TensorBoard event files of run directories: ``morpho tensorboard`` and ``grow --tensorboard``.

    convert_runs(["runs/lang-0", "runs/bench-lang-0"], "tb")   # tb/lang-0, tb/bench-lang-0/<row>
    # then: tensorboard --logdir tb

What a run's event files hold:

* scalars: every numeric field of every ``metrics.jsonl`` record, at the record's step,
  tagged by :func:`scalar_tag` (``train/loss``, ``train/bpc``, ``train/lr``,
  ``tissue/cells``, ``tissue/edges``, ``tissue/params``, ``gate/activity``, ``val/bpc``,
  ``flops/dense_train_flops``, ``flops/gated_train_flops``, ``test/acc`` …; a nested
  field's path is its tag). TensorBoard stores a scalar as float32.
* ``energy/level<k>/<term>`` at each snapshot: the mean over the level's cells of the free
  energy ``F`` (EMA), its terms ``U`` (surprise EMA), ``S`` (gate entropy), ``W`` (wiring
  cost, :func:`morpho.energy.wiring_cost`) and the ``gate`` EMA. A statistic equal in
  every cell of the snapshot (not measured yet: the seed's initial EMAs) is left out.
* text ``events``: the topology events of each step, one line each.
* ``summary/<field>`` at the last step: the numeric figures of ``summary.json`` (FLOPs per
  token dense and gated, training FLOPs, final size …).
* image ``tissue/graph``: the tissue at each snapshot (start, every growth round, end) as
  :func:`morpho.viz.graph2d.tissue_image`; needs matplotlib (the viz extra), without it
  the images are skipped with one warning line.

One code path writes both the live and the converted files: a :class:`TensorBoardMirror`
reads what was appended to a run directory since it last looked and writes it, in step
order. ``morpho grow --tensorboard`` runs it as a trainer callback (:class:`LiveTensorBoard`)
after every step and evaluation, so the live files equal the converted ones by
construction and mirror every record whoever logged it (the trainer, the scheduler, the
FLOP counter), with no copy of the record formats in the trainer.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from morpho.callbacks import Callback
from morpho.energy import wiring_cost
from morpho.rundir import parse_jsonl, snapshot_paths, write_dir
from morpho.runs import read_summary
from morpho.viz.runs import Snapshot, read_snapshot

LIVE_DIR = "tb"  # where ``morpho grow --tensorboard`` writes, inside the run directory
LOGS = ("metrics.jsonl", "events.jsonl")
KIND_PREFIX = {"train": "train", "eval": "val", "test": "test", "flops": "flops"}
TRAIN_TAGS = {  # train-record fields that read better grouped apart from the losses
    "cells": "tissue/cells",
    "edges": "tissue/edges",
    "params": "tissue/params",
    "gate_mean": "gate/activity",
    "surprise_mean": "energy/surprise",
    "tokens_per_s": "speed/tokens_per_s",
}
ENERGY_FIELDS = {"F": "fe_ema", "U": "surprise_ema", "S": "gate_entropy", "gate": "gate_ema"}
INSTALL = "pip install 'morpho[tensorboard]'"
# event fields the text shows otherwise (or not: the per-cell statistics are in events.jsonl)
EVENT_SKIP = ("step", "kind", "rule", "reason", "score", "snapshot", "free_energy")


def require_tensorboard() -> None:
    """``ValueError`` naming what to install when the tensorboard package is missing (or
    does not import)."""
    why = "not installed"
    if find_spec("tensorboard") is not None:
        try:
            import torch.utils.tensorboard  # noqa: F401
        except ImportError as e:
            why = f"it does not import: {e}"
        else:
            return
    raise ValueError(
        f"TensorBoard output needs the tensorboard package ({why}); expected it "
        f"installed: {INSTALL}"
    )


# ------------------------------------------------------------------ what is written
def scalar_tag(kind: str | None, key: str) -> str:
    """The tag of field ``key`` of a ``metrics.jsonl`` record of ``kind``: its kind's
    prefix (``eval`` → ``val``) and the field without it (``best_val_bpc`` → ``val/best_bpc``);
    train fields of :data:`TRAIN_TAGS` by their group; a nested field (``a/b``) as its path
    in a train record."""
    if kind == "train" and key in TRAIN_TAGS:
        return TRAIN_TAGS[key]
    if kind == "train" and "/" in key:
        return key
    prefix = KIND_PREFIX.get(kind or "", kind or "metrics")
    return f"{prefix}/{key.replace(prefix + '_', '', 1)}"


def record_scalars(record: dict[str, Any]) -> dict[str, float]:
    """Tag → value of every numeric field of a metrics record (booleans, strings, lists and
    None left out; nested dicts flattened to ``a/b``). Fields whose short tags would
    collide keep their full names."""
    kind = record.get("kind")
    prefix = KIND_PREFIX.get(kind or "", kind or "metrics")
    fields = dict(_numeric(record))
    short = {key: scalar_tag(kind, key) for key in fields}
    counts = Counter(short.values())
    return {
        (short[key] if counts[short[key]] == 1 else f"{prefix}/{key}"): value
        for key, value in fields.items()
    }


def _numeric(record: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, float]]:
    for key, value in record.items():
        if key in ("kind", "step") and not prefix:
            continue
        if isinstance(value, dict):
            yield from _numeric(value, f"{prefix}{key}/")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            yield f"{prefix}{key}", float(value)


def event_line(record: dict[str, Any]) -> str:
    """One topology event as a line of text: kind (rule), the cells and edges it touched,
    its other plain fields, its reason and score."""
    line = f"**{record.get('kind', '?')}**"
    if record.get("rule"):
        line += f" ({record['rule']})"
    for key, value in record.items():
        if key in EVENT_SKIP or value in ([], None, "") or isinstance(value, dict):
            continue
        shown = f"{value:.4g}" if isinstance(value, float) else value
        line += f", {key.replace('_', ' ')} {shown}"
    if record.get("reason"):
        line += f": {record['reason']}"
    if isinstance(record.get("score"), (int, float)):
        line += f" (score {record['score']:.3g})"
    return line


def level_energy(s: Snapshot, tissue_wiring: np.ndarray) -> dict[str, float]:
    """``energy/level<k>/<term>`` → the mean of the term over the cells of level ``k``."""
    fields = {name: s.cells[f] for name, f in ENERGY_FIELDS.items() if f in s.cells}
    fields["W"] = tissue_wiring
    level = s.cells["level"]
    out = {}
    for name, values in fields.items():
        if s.n_cells > 1 and np.ptp(values) == 0:
            continue  # one value in every cell: not measured yet
        for lvl in np.unique(level):
            out[f"energy/level{int(lvl)}/{name}"] = float(values[level == lvl].astype(float).mean())
    return out


def snapshot_wiring(s: Snapshot) -> np.ndarray:
    """(N,) wiring cost W of each cell of ``s`` (the engine's formula)."""
    t = SimpleNamespace(
        pos=torch.from_numpy(s.cells["pos"]).double(),
        edge_index=torch.from_numpy(s.edges["edge_index"]),
        num_nodes=s.n_cells,
    )
    return wiring_cost(t).numpy()  # type: ignore[arg-type]


# ------------------------------------------------------------------ the mirror
@dataclass(frozen=True)
class Item:
    """One thing to write: a scalar, a text or an image, at a step."""

    step: int
    what: str  # "scalar" | "text" | "image"
    tag: str
    value: Any


class TensorBoardMirror:
    """Writes a run directory's logs and snapshots as TensorBoard event files in
    ``log_dir``; :meth:`sync` writes what was added since the last call.

    Args:
        run: the run directory.
        log_dir: where the event files go (created on the first sync).
        figures: draw the tissue image at each snapshot (None: when matplotlib is installed).
    """

    def __init__(self, run: Path, log_dir: Path, figures: bool | None = None) -> None:
        self.run, self.log_dir = Path(run), Path(log_dir)
        self.figures = figures_available() if figures is None else figures
        self.offsets = dict.fromkeys(LOGS, 0)  # bytes read of each log
        self.lines = dict.fromkeys(LOGS, 0)  # lines read of each log
        self.sizes = dict.fromkeys(LOGS, -1)  # sizes seen at the last sync
        self.done: set[str] = set()  # snapshot files written
        self.last_snapshot: int | None = None  # step of the latest one (newborns: after it)
        self.last_step = -1  # of the metrics records read
        self.writer: Any = None

    def changed(self) -> bool:
        """Has a log grown since the last sync?"""
        sizes = {n: _size(self.run / n) for n in LOGS}
        return sizes != self.sizes

    def sync(self, final: bool = False, summary: dict[str, Any] | None = None) -> int:
        """Write what the run added since the last sync; returns the number of items.

        Args:
            final: the run is over: also read a last line without its newline (else left
                for later, as the run may be writing it) and write the summary.
            summary: the summary (None: ``summary.json``, if the run has one).
        """
        self.sizes = {n: _size(self.run / n) for n in LOGS}
        items = [*self._metrics(final), *self._events(final), *self._snapshots()]
        if final:
            items += self._summary(summary)
        items.sort(key=lambda it: it.step)  # stable; TensorBoard drops a tag's steps that go back
        if items or self.writer is None:
            self._write(items)
        return len(items)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def _write(self, items: list[Item]) -> None:
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.log_dir))
        w = self.writer
        for it in items:
            if it.what == "scalar":
                w.add_scalar(it.tag, it.value, it.step)
            elif it.what == "text":
                w.add_text(it.tag, it.value, it.step)
            else:
                w.add_image(it.tag, it.value, it.step, dataformats="HWC")
        w.flush()

    def _read(self, name: str, final: bool) -> list[dict[str, Any]]:
        path = self.run / name
        if not path.is_file():
            return []
        with open(path, "rb") as f:
            f.seek(self.offsets[name])
            data = f.read()
        if not final:
            data = data[: data.rfind(b"\n") + 1]  # a line being written waits for the next sync
        records = parse_jsonl(data.decode("utf-8", errors="replace"), path, self.lines[name] + 1)
        self.offsets[name] += len(data)
        self.lines[name] += data.count(b"\n")
        return records

    def _metrics(self, final: bool) -> list[Item]:
        items = []
        for r in self._read("metrics.jsonl", final):
            step = _step(r, self.run / "metrics.jsonl")
            self.last_step = max(self.last_step, step)
            items += [Item(step, "scalar", t, v) for t, v in record_scalars(r).items()]
        return items

    def _summary(self, summary: dict[str, Any] | None) -> list[Item]:
        """``summary/<field>`` at the run's last step (``steps``): its numeric figures, such as
        the FLOPs per token (dense and gated) and the training FLOPs."""
        summary = read_summary(self.run) if summary is None else summary
        step = summary.get("steps")
        step = step if isinstance(step, int) and not isinstance(step, bool) else self.last_step
        return [Item(max(step, 0), "scalar", f"summary/{k}", v) for k, v in _numeric(summary)]

    def _events(self, final: bool) -> list[Item]:
        by_step: dict[int, list[str]] = {}
        for r in self._read("events.jsonl", final):
            by_step.setdefault(_step(r, self.run / "events.jsonl"), []).append(event_line(r))
        return [Item(s, "text", "events", "  \n".join(lines)) for s, lines in by_step.items()]

    def _snapshots(self) -> list[Item]:
        items = []
        for path in snapshot_paths(self.run):
            if path.name in self.done:
                continue
            s = read_snapshot(path)
            energy = level_energy(s, snapshot_wiring(s))
            items += [Item(s.step, "scalar", t, v) for t, v in energy.items()]
            if self.figures:
                from morpho.viz.graph2d import tissue_image

                title = f"step {s.step}: {s.meta.get('kind', 'snapshot')}"
                if s.meta.get("events"):
                    title += " (" + ", ".join(map(str, s.meta["events"])) + ")"
                image = tissue_image(s, title, self.last_snapshot)
                items.append(Item(s.step, "image", "tissue/graph", image))
            self.done.add(path.name)
            self.last_snapshot = s.step
        return items


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return -1


def _step(record: dict[str, Any], path: Path) -> int:
    step = record.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(
            f"a record of {str(path)!r} has step {step!r}; expected a non-negative integer "
            "step in every record"
        )
    return step


# ------------------------------------------------------------------ live: a callback
class LiveTensorBoard(Callback):
    """``morpho grow --tensorboard``: mirrors the run directory into ``<run>/tb`` after every
    step that logged something, every evaluation and at the end (see the module docstring).

    A resumed run's logs were cut back to its checkpoint, so its ``tb`` is written again
    from the start. Refuses (``ValueError``) to be built without tensorboard installed.
    """

    def __init__(self) -> None:
        require_tensorboard()
        self.mirror: TensorBoardMirror | None = None

    def on_train_start(self, trainer: Any) -> None:
        if trainer.run is None:  # a data-parallel rank that writes no run directory
            return
        log_dir = trainer.run.path / LIVE_DIR
        shutil.rmtree(log_dir, ignore_errors=True)
        self.mirror = TensorBoardMirror(trainer.run.path, log_dir)
        self.mirror.sync()

    def on_step_end(self, trainer: Any, step: int, result: Any) -> None:
        if self.mirror is not None and self.mirror.changed():
            self.mirror.sync()

    def on_eval(self, trainer: Any, step: int, record: dict[str, Any]) -> None:
        if self.mirror is not None:
            self.mirror.sync()

    def on_train_end(self, trainer: Any, summary: dict[str, Any]) -> None:
        if self.mirror is not None:
            self.mirror.sync(final=True, summary=summary)  # written to the run right after
            self.mirror.close()


# ------------------------------------------------------------------ offline: conversion
def run_dirs(path: Path) -> list[tuple[Path, Path]]:
    """``(run directory, name below the output)`` of every run in ``path``: the run itself,
    the rows of a bench (``bench.json``), the per-seed runs of a stream (``results.json``
    and ``runs/``); ``ValueError`` for anything else."""
    if (path / "metrics.jsonl").is_file():
        return [(path, Path())]
    if (path / "bench.json").is_file():
        rows = json.loads((path / "bench.json").read_text(encoding="utf-8")).get("rows", [])
        found = [(path / r["name"], Path(r["name"])) for r in rows if "name" in r]
        found = [(p, n) for p, n in found if (p / "metrics.jsonl").is_file()]
    elif (path / "results.json").is_file() and (path / "runs").is_dir():
        found = [
            (p, Path("runs") / p.name)
            for p in sorted((path / "runs").iterdir())
            if (p / "metrics.jsonl").is_file()
        ]
    else:
        found = []
    if not found:
        raise ValueError(
            f"{str(path)!r} is not a run directory, a bench or a stream folder; expected "
            "metrics.jsonl, or bench.json or results.json with run directories beside it"
        )
    return found


def output_names(paths: list[Path]) -> list[Path]:
    """Each input's folder below the output: its path from the inputs' common parent
    (``runs/a runs/b`` → ``a``, ``b``; ``x/run y/run`` → ``x/run``, ``y/run``)."""
    full = [Path(os.path.abspath(p)) for p in paths]
    base = Path(os.path.commonpath([p.parent for p in full]))
    names = [p.relative_to(base) for p in full]
    if len(set(names)) < len(names):
        raise ValueError("a run is named twice; expected each run directory once")
    return names


def convert_runs(
    paths: list[str | os.PathLike[str]], out: str | os.PathLike[str], overwrite: bool = False
) -> list[Path]:
    """Write every run of ``paths`` (runs, benches, streams: :func:`run_dirs`) as event
    files under ``out``, one folder per run; ``out`` is written whole (a non-empty one is
    refused unless ``overwrite``), so nothing is half-written on bad input.

    Returns:
        The folders written, one per run.
    """
    require_tensorboard()
    sources = [Path(p) for p in paths]
    if not sources:
        raise ValueError("no run given; expected one or more run directories")
    for p in sources:
        if not p.is_dir():
            raise ValueError(f"run directory {str(p)!r} does not exist; expected a folder")
    jobs = [
        (run, name / sub)
        for src, name in zip(sources, output_names(sources), strict=True)
        for run, sub in run_dirs(src)
    ]
    figures = figures_available()

    def layout(staging: Path) -> None:
        for run, name in jobs:
            mirror = TensorBoardMirror(run, staging / name, figures)
            try:
                mirror.sync(final=True)
            finally:
                mirror.close()

    out_path = Path(out)
    write_dir(out_path, layout, overwrite)
    return [out_path / name for _, name in jobs]


def figures_available() -> bool:
    """True with matplotlib; else False and one warning line."""
    if find_spec("matplotlib") is not None:
        return True
    print(
        "morpho: matplotlib is not installed: TensorBoard gets no tissue images "
        "(pip install 'morpho[viz]')",
        file=sys.stderr,
    )
    return False
