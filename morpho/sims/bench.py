"""``morpho bench``: morpho against its ablations and static baselines, in one run.

For one config (task, data, steps, batch, seed) it trains, each on the same batches:

* ``morpho`` — grown from the seed tissue with the configured growth rules;
* ``morpho-fixed`` — a fresh network at morpho's *final* topology, growth off
  (does growing help, or only the topology it ends at?);
* ``morpho-no-<rule>`` — each enabled rule switched off in turn;
* ``transformer``, ``gru`` — static baselines sized to morpho's final parameter count;
* ``transformer-0.5x``, ``transformer-2x``, ``gru-0.5x``, ``gru-2x`` (only when ``rows``
  names them) — the static peers at half and twice morpho's final parameter count;
* ``transformer-stack`` (only when ``rows`` names it) — the Transformer grown by depth
  stacking (G_stack, Du et al. 2024): half its depth for the first :data:`STACK_AT` of the
  steps, then its trained blocks copied to double the depth;
* ``ngram`` — in a language bench, a count n-gram (interpolated Kneser–Ney, order and
  discount tuned on the training split: :mod:`morpho.sims.ngram`) scored on the same eval
  windows: the floor below which a budget says nothing about a neural model;
* ``morpho+<mechanism>`` — with ``mechanisms``: morpho with one optional mechanism of the
  thermodynamic picture switched on (:data:`MECHANISMS`), against ``morpho`` with all off.

``rows`` restricts the standard rows to a subset (e.g. ``["morpho"]`` for a mechanism table).

An image bench (``--task digits|mnist``, a classification task) trains instead of the
token peers:

* ``morpho-reset`` — morpho with a fresh optimizer after every growth event (what GroMo
  and other growing libraries must do), beside ``morpho``, which carries the state exactly;
* ``mlp`` — a one-hidden-layer SELU MLP of morpho's final parameter count;
* ``gromo`` — only when the optional ``gromo`` package is installed: GroMo's TINY-grown MLP
  from width 2 to the ``mlp`` row's width by its documented loop
  (:mod:`morpho.sims.gromo_peer`), its statistics passes, linear algebra and line searches
  counted in its FLOPs.

Its rows log validation accuracy (and loss) with their FLOPs; ``bench.json`` adds
``reach``: the training FLOPs at which each row first reached 99 % of a reference's final
validation accuracy (:data:`REACH`: morpho and its ablations against ``morpho-fixed``, the
MLP peers against ``mlp``).

    result = bench(RunConfig.preset("small"), out="runs/bench-lang-0")
    result["rows"][0]   # {"name": "morpho", "params": ..., "best_val_bpc": ..., ...}

Every row counts its cumulative *dense* training FLOPs with a :class:`~morpho.flops.FlopCounter`
(every forward the scheduler and its probes run included; the gated, open-share figure
beside it) and logs them at every evaluation, at least :data:`EVAL_POINTS` per row, so
``morpho plot <bench dir>`` draws val bpc (accuracy) against training FLOPs for every row.

Every row trains in its own run directory under ``out`` (``out/<name>/``: metrics, events,
snapshots); ``out/bench.json`` holds ``{"rows": [...], "config": ..., "machine": ...}``.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import torch

from morpho.checkpoint import load_network
from morpho.config import PRESETS, RunConfig
from morpho.edits import Edit
from morpho.files import atomic_write, dump_toml, load_toml
from morpho.flops import FlopCounter
from morpho.grow import build_task, fit_to_task, grow
from morpho.mechanisms import build_terms
from morpho.network import Network
from morpho.optim import build_optimizer
from morpho.rundir import RunDir, read_jsonl
from morpho.tasks import TASKS, task_kind
from morpho.trainer import Callback, Model, Trainer, is_growing

from .baselines import (
    BASELINES,
    StackAt,
    build_baseline,
    build_image_mlp,
    build_stack_peer,
    image_mlp_config,
)
from .gromo_peer import gromo_available, gromo_row
from .lang import BENCH_PRESETS
from .ngram import ngram_row

MECHANISMS: dict[str, dict[str, Any]] = {
    # slow clocks: hidden level k ticks every 2^k tokens (block means, held state)
    "clocks": {"network": {"clock_ratio": 2}},
    # mitosis in series (identity at birth, on a new level) instead of in parallel
    "series": {"growth": {"mitosis": {"mode": "series"}}},
    # dendrites may jump anywhere, paying the wiring charge for the length
    "wormholes": {"growth": {"dendrite": {"wormholes": True}}},
    # criticality: finite-time Lyapunov exponent every 10 steps, pushed below 0
    "lyapunov": {"lyapunov": {"every": 10, "weight": 0.1}},
    # S of the free energy from a KNIFE estimate of the cells' output entropy
    "knife": {"growth": {"entropy_term": "repr_entropy"}},
    # 1-path-norm of the cell graph as a regulariser
    "pathnorm": {"path_norm": {"weight": 1e-3}},
    # ACT: up to 3 passes through the tissue per token, ponder cost 0.01
    "ponder": {"network": {"ponder_max": 3}},
}

SIZES = {"0.5x": 0.5, "2x": 2.0}  # peers at these multiples of morpho's final size
PEERS = (  # rows trained only when ``rows`` names them
    *(f"{kind}-{size}" for kind in BASELINES for size in SIZES),
    "transformer-stack",
)
STACK_AT = 0.25  # share of the steps the stacked peer trains at half depth
EVAL_POINTS = 24  # evaluations per row: a curve of val bpc against training FLOPs
REACH_SHARE = 0.99  # ``reach``: FLOPs to this share of a reference row's final accuracy
REACH = {"morpho": "morpho-fixed", "mlp": "mlp"}  # row family → its reference row
ROW_KEYS = (
    "name",
    "params",
    "dense_train_flops",
    "gated_train_flops",
    "flops_per_token",
    "best_val_bpc",
    "final_val_bpc",
    "tokens_per_s",
)


def enabled_rules(cfg: RunConfig) -> list[str]:
    """The growth rules a run uses (none when growth is off); ``ValueError`` on a bad table."""
    growth = cfg.growth
    return list(growth.rules) if growth.enabled else []


def is_classify(cfg: RunConfig) -> bool:
    """Is the configured task a classification task (an image bench)?"""
    return task_kind(TASKS.get(cfg.task)) == "classify"


def standard_rows(cfg: RunConfig) -> list[str]:
    """The rows a bench of ``cfg`` trains by default, in order."""
    ablations = [f"morpho-no-{r}" for r in enabled_rules(cfg)]
    if is_classify(cfg):
        peers = ["mlp", *(["gromo"] if gromo_available() else [])]
        return ["morpho", "morpho-fixed", *ablations, "morpho-reset", *peers]
    counts = ["ngram"] if cfg.task == "lang" else []
    return ["morpho", "morpho-fixed", *ablations, *BASELINES, *counts]


def row_names(
    cfg: RunConfig, rows: Sequence[str] | None = None, mechanisms: Sequence[str] = ()
) -> list[str]:
    """Names of the bench rows, in order; ``ValueError`` on an unknown row or mechanism."""
    standard = standard_rows(cfg)
    counts = [n for n in standard if n == "ngram"]
    peers = [] if is_classify(cfg) else list(PEERS)
    for name in rows or ():
        if name == "gromo" and is_classify(cfg) and not gromo_available():
            raise ValueError("the gromo row needs the gromo package; expected it installed")
        if name not in standard + peers:
            known = ", ".join(standard + peers)
            raise ValueError(f"unknown bench row {name!r}; expected one of: {known}")
    for m in mechanisms:
        if m not in MECHANISMS:
            raise ValueError(f"unknown mechanism {m!r}; expected one of: {', '.join(MECHANISMS)}")
    always = ("morpho", *counts)  # the others refer to morpho; the n-gram costs seconds
    chosen = [n for n in standard if rows is None or n in rows or n in always]
    chosen += [n for n in peers if n in (rows or ())]  # trained only when asked for
    return chosen + [f"morpho+{m}" for m in mechanisms]


def mechanism_config(cfg: RunConfig, mechanism: str) -> RunConfig:
    """``cfg`` with one mechanism of :data:`MECHANISMS` switched on."""
    return cfg.merged(MECHANISMS[mechanism])


def bench(
    cfg: RunConfig,
    out: str | os.PathLike[str],
    overwrite: bool = False,
    log: Callable[[str], None] | None = None,
    rows: Sequence[str] | None = None,
    mechanisms: Sequence[str] = (),
    eval_points: int = EVAL_POINTS,
    lrs: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Train every row of the bench for ``cfg`` under ``out``; returns and writes bench.json.

    ``rows``: the standard rows to train (``morpho`` always runs: the others refer to it;
    so does a language bench's ``ngram``, which costs seconds);
    ``mechanisms``: names from :data:`MECHANISMS`, one ``morpho+<name>`` row each;
    ``eval_points``: at least this many evaluations per row (``train.eval_every`` is
    lowered to fit), each logging the row's cumulative training FLOPs
    (:class:`~morpho.flops.FlopCounter`) beside its validation bpc;
    ``lrs``: peak learning rate by row name (``"morpho"`` also sets its ablations, fixed
    and mechanism rows unless they have their own), e.g. a bench preset's tuned values.

    Raises:
        ValueError: a bad config, task or data (before anything is written), or an ``out``
            that is not empty without ``overwrite``.
    """
    say = log or (lambda _: None)
    out = Path(out)
    cfg = with_eval_points(cfg, eval_points)
    names = row_names(cfg, rows, mechanisms)  # validates rows, growth table, then task and data
    for m in mechanisms:
        mechanism_config(cfg, m)  # a mechanism that does not fit the config fails here
    task = build_task(cfg)
    cfg = fit_to_task(cfg, task)  # an image task's own shape (a language config unchanged)
    RunDir(out, overwrite=overwrite)
    out.mkdir(parents=True, exist_ok=True)
    done: list[dict[str, Any]] = []

    def announce(name: str) -> bool:
        if name not in names:
            return False
        say(f"[{len(done) + 1}/{len(names)}] {name}")
        return True

    lrs = dict(lrs or {})

    def lr(name: str, row_cfg: RunConfig) -> RunConfig:
        return with_row_lr(row_cfg, name, lrs)

    announce("morpho")
    done.append(morpho_row("morpho", lr("morpho", cfg), out, overwrite))
    if announce("morpho-fixed"):
        final_net, _ = load_network(out / "morpho" / "checkpoints" / "final.pt")
        done.append(_fixed_row(lr("morpho-fixed", cfg), final_net, task, out, overwrite))
    for rule in enabled_rules(cfg):
        if announce(name := f"morpho-no-{rule}"):
            ablated = cfg.merged(
                {"growth": {"rules": [r for r in enabled_rules(cfg) if r != rule]}}
            )
            done.append(morpho_row(name, lr(name, ablated), out, overwrite))
    for name in BASELINES:
        if announce(name):
            model = build_baseline(name, task.vocab_size, done[0]["params"], seed=cfg.train.seed)
            done.append(train_row(name, model, lr(name, cfg), task, out / name, overwrite))
    for kind in BASELINES:
        for size, factor in SIZES.items():
            if announce(name := f"{kind}-{size}"):
                target = round(factor * done[0]["params"])
                model = build_baseline(kind, task.vocab_size, target, seed=cfg.train.seed)
                done.append(train_row(name, model, lr(name, cfg), task, out / name, overwrite))
    if announce("transformer-stack"):
        model = build_stack_peer(task.vocab_size, done[0]["params"], seed=cfg.train.seed)
        at = StackAt(max(1, round(STACK_AT * cfg.train.steps)))
        path = out / "transformer-stack"
        row_cfg = lr("transformer-stack", cfg)
        done.append(train_row("transformer-stack", model, row_cfg, task, path, overwrite, [at]))
    if announce("morpho-reset"):
        row_cfg = lr("morpho-reset", cfg)
        done.append(morpho_row("morpho-reset", row_cfg, out, overwrite, [ResetOptimizer()]))
    if announce("mlp"):
        pixels, seed = task.seq_len * task.input_dim, cfg.train.seed
        model = build_image_mlp(pixels, task.n_classes, done[0]["params"], seed=seed)
        done.append(train_row("mlp", model, lr("mlp", cfg), task, out / "mlp", overwrite))
    if announce("gromo"):
        width = image_mlp_config(task.seq_len * task.input_dim, task.n_classes, done[0]["params"])
        row_cfg = lr("gromo", cfg)
        row = gromo_row(task, row_cfg, width.hidden, out / "gromo", overwrite)
        done.append({**_row("gromo", row, out / "gromo"), "lr": row_cfg.train.lr})
    if announce("ngram"):
        t = cfg.train
        done.append(ngram_row(task, t.seq_len, t.eval_batches, t.batch_size))
    for m in mechanisms:
        announce(f"morpho+{m}")
        name = f"morpho+{m}"
        done.append(morpho_row(name, lr(name, mechanism_config(cfg, m)), out, overwrite))
    result = {
        "rows": done,
        **({"reach": reach_table(out, done)} if is_classify(cfg) else {}),
        "config": cfg.to_dict(),
        "lrs": lrs,
        "task": task.describe(),
        "mechanisms": {m: MECHANISMS[m] for m in mechanisms},
        "machine": machine(),
    }
    text = json.dumps(result, indent=2) + "\n"
    atomic_write(out / "bench.json", lambda f: f.write(text.encode()))
    return result


def bench_config(
    preset: str, config: Path | None, overrides: dict[str, Any]
) -> tuple[RunConfig, dict[str, float]]:
    """``(run config, learning rate by row)`` of ``preset`` — a bench preset of
    :data:`~morpho.sims.lang.BENCH_PRESETS` (its base run preset, its overrides and its
    tuned learning rates) or a run preset (no per-row rates) — then of the TOML file
    ``config``, then of ``overrides`` (the CLI flags; ``None`` values are not given)."""
    if preset not in BENCH_PRESETS and preset not in PRESETS:
        names = ", ".join([*PRESETS, *BENCH_PRESETS])
        raise ValueError(f"unknown preset {preset!r}; expected one of: {names}")
    spec = BENCH_PRESETS.get(preset, {"base": preset, "config": {}, "lr": {}})
    cfg = RunConfig.preset(spec["base"]).merged(spec["config"])
    if config is not None:
        cfg = cfg.merged(load_toml(config))
    return cfg.merged(_given(overrides)), dict(spec["lr"])


def _given(table: dict[str, Any]) -> dict[str, Any]:
    """``table`` without its ``None`` values (nested tables too, dropped when empty)."""
    out = {}
    for k, v in table.items():
        v = _given(v) if isinstance(v, dict) else v
        if v is not None and v != {}:
            out[k] = v
    return out


def with_eval_points(cfg: RunConfig, points: int) -> RunConfig:
    """``cfg`` with ``train.eval_every`` lowered so that a run evaluates ``points`` times
    (the final evaluation included); ``ValueError`` if ``points`` < 1."""
    if points < 1:
        raise ValueError(f"eval_points must be >= 1; got {points}")
    every = min(cfg.train.eval_every, max(1, cfg.train.steps // points))
    return cfg.merged({"train": {"eval_every": every}})


def with_row_lr(cfg: RunConfig, name: str, lrs: Mapping[str, float]) -> RunConfig:
    """``cfg`` with row ``name``'s learning rate from ``lrs`` (a ``morpho…`` row falls back
    to ``lrs["morpho"]``, ``transformer-stack`` to ``lrs["transformer"]``); unchanged when
    ``lrs`` has neither."""
    family = "morpho" if name.startswith("morpho") else name.split("-")[0]
    value = lrs.get(name, lrs.get(family))
    return cfg if value is None else cfg.merged({"train": {"lr": float(value)}})


class ResetOptimizer(Callback):
    """Trainer callback: a fresh optimizer after every edit, instead of the exactly carried
    state (the ``morpho-reset`` row: what a library that swaps in new modules must do)."""

    def on_edit(self, trainer: Trainer, edit: Edit) -> None:
        trainer.optimizer = build_optimizer(trainer.net, trainer.cfg)


def morpho_row(
    name: str,
    cfg: RunConfig,
    out: Path,
    overwrite: bool,
    callbacks: Sequence[Callback] = (),
) -> dict[str, Any]:
    counter = [*callbacks, FlopCounter()]
    summary = grow(cfg, out / name, overwrite=overwrite, callbacks=counter)
    return {**_row(name, summary, out / name), "lr": cfg.train.lr}


def _fixed_row(
    cfg: RunConfig, grown: Network, task: Any, out: Path, overwrite: bool
) -> dict[str, Any]:
    """A fresh network on ``grown``'s final topology, trained with growth off."""
    fixed_cfg = cfg.merged({"growth": {"enabled": False}})
    torch.manual_seed(cfg.train.seed)
    net = Network(grown.cfg, tissue=grown.tissue.clone())
    return train_row("morpho-fixed", net, fixed_cfg, task, out / "morpho-fixed", overwrite)


def train_row(
    name: str,
    model: torch.nn.Module,
    cfg: RunConfig,
    task: Any,
    path: Path,
    overwrite: bool,
    callbacks: Sequence[Callback] = (),
) -> dict[str, Any]:
    run = RunDir(path, overwrite=overwrite)
    terms = build_terms(cfg) if is_growing(model) else []
    trainer = Trainer(
        cast(Model, model),
        task,
        cfg.train,
        run=run,
        callbacks=[*callbacks, FlopCounter()],
        terms=terms,
    )
    run.create(dump_toml({**cfg.to_dict(), "model": _describe(model)}))
    try:
        return {**_row(name, trainer.fit(), path), "lr": cfg.train.lr}
    finally:
        run.release()


def _describe(model: torch.nn.Module) -> dict[str, Any]:
    fields = vars(getattr(model, "cfg", None) or object())
    return {
        "class": type(model).__name__,
        **{k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()},
    }


def _row(name: str, summary: dict[str, Any], path: Path) -> dict[str, Any]:
    events = read_jsonl(path / "events.jsonl")
    kinds: dict[str, int] = {}
    for e in events:
        kinds[str(e.get("kind"))] = kinds.get(str(e.get("kind")), 0) + 1
    return {
        "name": name,
        "params": summary["params"],
        "dense_train_flops": summary["dense_train_flops"],
        "gated_train_flops": summary["gated_train_flops"],
        "flops_by_kind": summary["flops_by_kind"],
        "train_flops": summary["train_flops"],  # the trainer's own figure: training steps only
        "flops_per_token": summary["flops_per_token"],
        **metric_keys(summary),
        "tokens_per_s": summary.get("tokens_per_s"),
        "dense_flops_per_token": summary["dense_flops_per_token"],
        "gate_mean": summary.get("gate_mean"),
        "cells": summary.get("cells"),
        "edges": summary.get("edges"),
        "events": len(events),
        "event_kinds": kinds,
        "steps": summary["steps"],
        **{k: summary[k] for k in MONITORS if summary.get(k) is not None},
        "wormholes": sum(1 for e in events if (e.get("stats") or {}).get("wormhole")),
    }


MONITORS = ("lyapunov", "path_norm", "ponder_passes", "repr_entropy")


def metric_keys(summary: dict[str, Any]) -> dict[str, Any]:
    """A row's figures of merit: bpc, or a classifier's accuracies and losses."""
    if "test_acc" not in summary:
        return {"best_val_bpc": summary["best_val_bpc"], "final_val_bpc": summary["val_bpc"]}
    return {
        "best_val_acc": summary["best_val_acc"],
        "final_val_acc": summary["val_acc"],
        "final_val_loss": summary["val_loss"],
        "test_acc": summary["test_acc"],
        "test_loss": summary["test_loss"],
    }


def first_reach(metrics: Path, target: float) -> float | None:
    """Training FLOPs of the first ``flops`` record of ``metrics`` whose ``val_acc`` is at
    least ``target``; None if no record reaches it."""
    for r in read_jsonl(metrics) if metrics.is_file() else []:
        if r.get("kind") == "flops" and r.get("val_acc") is not None and r["val_acc"] >= target:
            return float(r["dense_train_flops"])
    return None


def reach_table(out: Path, rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Row → ``{"reference", "target", "flops"}``: the training FLOPs at which the row first
    reached :data:`REACH_SHARE` of its reference row's final validation accuracy
    (:data:`REACH`; ``flops`` None: never)."""
    final = {r["name"]: r["final_val_acc"] for r in rows}
    table = {}
    for r in rows:
        ref = REACH["morpho" if r["name"].startswith("morpho") else "mlp"]
        if ref not in final:
            continue
        target = REACH_SHARE * final[ref]
        flops = first_reach(out / r["name"] / "metrics.jsonl", target)
        table[r["name"]] = {"reference": ref, "target": target, "flops": flops}
    return table


def machine() -> dict[str, Any]:
    """Where the numbers were measured."""
    cuda = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    return {
        "platform": platform.platform(),
        "processor": platform.processor(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cuda": cuda,
    }


def render_table(rows: list[dict[str, Any]], title: str = "morpho bench") -> Any:
    """A rich table of bench rows (best bpc in bold; an image bench: its accuracies)."""
    if rows and "test_acc" in rows[0]:
        return _accuracy_table(rows, title)
    from rich.table import Table

    table = Table(title=title)
    for col in (
        "name",
        "params",
        "best val bpc",
        "final val bpc",
        "FLOPs/token",
        "dense FLOPs",
        "gated FLOPs",
        "tok/s",
        "gate",
        "cells",
        "events",
    ):
        table.add_column(col, justify="left" if col == "name" else "right")
    best = min(r["best_val_bpc"] for r in rows)
    for r in rows:
        bpc = f"{r['best_val_bpc']:.3f}"
        table.add_row(
            r["name"],
            "-" if r["params"] is None else f"{r['params']:,}",
            f"[bold]{bpc}[/]" if r["best_val_bpc"] == best else bpc,
            f"{r['final_val_bpc']:.3f}",
            f"{r['flops_per_token'] / 1e3:,.0f}k",
            f"{r['dense_train_flops']:.2e}",
            f"{r['gated_train_flops']:.2e}",
            "-" if r["tokens_per_s"] is None else f"{r['tokens_per_s']:,.0f}",
            "-" if r["gate_mean"] is None else f"{r['gate_mean']:.2f}",
            "-" if r["cells"] is None else str(r["cells"]),
            str(r["events"]),
        )
    return table


def _accuracy_table(rows: list[dict[str, Any]], title: str) -> Any:
    """A rich table of an image bench's rows (best test accuracy in bold)."""
    from rich.table import Table

    table = Table(title=title)
    cols = ("name", "params", "best val acc", "final val acc", "test acc", "dense FLOPs", "events")
    for col in cols:
        table.add_column(col, justify="left" if col == "name" else "right")
    best = max(r["test_acc"] for r in rows)
    for r in rows:
        test = f"{r['test_acc']:.4f}"
        table.add_row(
            r["name"],
            f"{r['params']:,}",
            f"{r['best_val_acc']:.4f}",
            f"{r['final_val_acc']:.4f}",
            f"[bold]{test}[/]" if r["test_acc"] == best else test,
            f"{r['dense_train_flops']:.2e}",
            str(r["events"]),
        )
    return table
