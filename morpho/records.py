"""What a training run logs: the train record of a log step, the terms' monitors, the
summary at the end, and the FLOPs per token they report (the trainer calls these; they
read the trainer and never change it).

    record = train_record(trainer, ce, result)     # one metrics.jsonl "train" line
    summary = run_summary(trainer, output, report) # summary.json
"""

from __future__ import annotations

import math
import platform
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from morpho.output import Output

if TYPE_CHECKING:
    from morpho.trainer import Trainer

LN2 = math.log(2.0)
# the order of the monitors' figures in a log line
LOG_ORDER = ("lyapunov", "path_norm", "repr_entropy", "ponder_passes", "ponder_cost")


def n_cells(trainer: Trainer) -> int | None:
    return trainer.net.tissue.num_nodes if trainer.growing else None


def n_edges(trainer: Trainer) -> int | None:
    return int(trainer.net.tissue.edge_index.shape[1]) if trainer.growing else None


def gate_mean(output: Output | None) -> float | None:
    """Mean gate activity over cells in ``output``; None for a model without gates."""
    return float(output.stats["gate_mean"].mean()) if output is not None else None


def passes_of(report: Output | None) -> int:
    """ACT passes a forward record ran (1 without ACT or without a record)."""
    ponder = report.ponder if report is not None else None
    return int(ponder.n_passes_run) if ponder is not None else 1


def flops_per_token(
    trainer: Trainer, output: Output | None, passes: int, gate: Tensor | float | None = None
) -> float:
    """Forward FLOPs per token: the gates of ``output`` (or ``gate``) at ``passes`` ACT
    passes (those of the record the monitors report)."""
    net, seq_len = trainer.net, trainer.cfg.seq_len
    if not trainer.growing:
        return float(net.flops_per_token(seq_len))
    if gate is None:
        gate = output.stats["gate_mean"] if output is not None else 1.0
    return float(net.flops_per_token(seq_len, gate=gate, passes=passes))


def monitor_record(trainer: Trainer, report: Output | None) -> dict[str, Any]:
    """The terms' monitors for a log line, in :data:`LOG_ORDER`."""
    if not trainer.growing:
        return {}
    out: dict[str, Any] = {}
    for term in trainer.terms:
        out.update(term.record(trainer.net, report))
    rank = {k: i for i, k in enumerate(LOG_ORDER)}
    return dict(sorted(out.items(), key=lambda kv: rank.get(kv[0], len(rank))))


def train_record(
    trainer: Trainer, ce: float, output: Output | None, report: Output | None
) -> dict[str, Any]:
    """The ``metrics.jsonl`` line of a log step (``ce`` in nats)."""
    stats = output.stats if output is not None else {}
    return {
        "kind": "train",
        "step": trainer.step,
        "loss": ce,
        **({} if trainer.classify else {"bpc": ce / LN2}),
        "lr": trainer.optimizer.param_groups[0]["lr"],
        "cells": n_cells(trainer),
        "edges": n_edges(trainer),
        "params": trainer.net.n_params(),
        "tokens_per_s": trainer.tokens_per_s,
        "gate_mean": gate_mean(output),
        "surprise_mean": float(stats["surprise"].mean()) if "surprise" in stats else None,
        **monitor_record(trainer, report),
    }


def run_summary(trainer: Trainer, output: Output | None, report: Output | None) -> dict[str, Any]:
    """``summary.json``: the latest evaluation, sizes, throughput, FLOPs and monitors."""
    net, s = trainer.net, trainer.state
    flops = flops_per_token(trainer, output, passes_of(report))
    if trainer.classify:
        keys = ("val_loss", "val_acc", "best_val_acc")
        metric: dict[str, Any] = {k: s.last_eval.get(k) for k in keys}
    else:
        metric = {"val_bpc": s.last_eval.get("val_bpc"), "best_val_bpc": s.best_val_bpc}
    dense = flops_per_token(trainer, output, passes_of(report), 1.0) if trainer.growing else flops
    return {
        **metric,
        "steps": trainer.step,
        "params": net.n_params(),
        "cells": n_cells(trainer),
        "edges": n_edges(trainer),
        "edits": s.n_edits,
        "gate_mean": gate_mean(output),
        "tokens_per_s": trainer.tokens_per_s,
        "train_flops": s.train_flops,
        "flops_per_token": flops,
        "dense_flops_per_token": dense,
        **monitor_record(trainer, report),
        "task": trainer.task.describe(),
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
    }
