"""A synthetic run directory grown by engine edits alone (no training), for demos and tests.

    synthetic_run("runs/synth", n_cells=500, level_sizes=(8, 32, 32, 8), fan_in=3)

Each round (``step_every`` steps) splits the cells of highest synthetic free energy, lets
the least active hidden cell die now and then, grows an edge, and writes what a real
``morpho grow`` run writes: an ``events.jsonl`` record per edit, a ``metrics.jsonl``
train record (and an eval every few rounds), and a snapshot of the tissue. The statistics
(``fe_ema``, ``gate_ema``) are a random walk, not measured: this exercises the renderer at
any size in seconds; use a real run to look at real dynamics.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch

import morpho
from morpho.network import Network, NetworkConfig
from morpho.rundir import RunDir
from morpho.tissue import HIDDEN


def synthetic_run(
    out: str | os.PathLike[str],
    n_cells: int = 40,
    seed: int = 0,
    level_sizes: tuple[int, ...] = (2, 4, 4, 2),
    fan_in: int = 0,
    splits_per_round: int = 3,
    step_every: int = 10,
) -> Path:
    """Grow a tissue to ``n_cells`` cells by engine edits, writing a run directory at ``out``.

    Args:
        out: a new (or empty) folder.
        n_cells: stop once the tissue has at least this many cells.
        seed: seeds the choice of edits and the statistics.
        level_sizes, fan_in: the seed tissue (see :func:`morpho.tissue.seed_tissue`).
        splits_per_round: mitoses per round (one snapshot per round).
        step_every: training steps a round stands for.

    Returns:
        The run directory.
    """
    gen = torch.Generator().manual_seed(seed)
    cfg = NetworkConfig(
        vocab_size=8,
        d_cell=4,
        n_heads=1,
        mlp_ratio=1,
        level_sizes=level_sizes,
        seed_fan_in=fan_in,
        seed=seed,
    )
    net = Network(cfg)
    _walk_statistics(net, gen)
    run = RunDir(out)
    run.create(f"# synthetic run: morpho.viz.synthetic, seed {seed}\n")
    run.save_snapshot(net.snapshot(), 0, {"kind": "start"})
    round_ = 0
    while net.tissue.num_nodes < n_cells:
        round_ += 1
        net.step = round_ * step_every
        _one_round(net, run, gen, splits_per_round, round_)
        _walk_statistics(net, gen)
        _log_metrics(net, run, round_)
        run.save_snapshot(net.snapshot(), net.step, {"kind": "growth"})
    run.write_summary(
        {
            "cells": net.tissue.num_nodes,
            "edges": int(net.tissue.edge_index.shape[1]),
            "params": net.n_params(),
            "synthetic": True,
        }
    )
    return run.path


def _one_round(net: Network, run: RunDir, gen: torch.Generator, n_splits: int, round_: int) -> None:
    t = net.tissue
    for cell_id in t.cell_id[t.fe_ema.argsort(descending=True)[:n_splits]].tolist():
        edit = morpho.split(net, cell_id, noise=0.01)
        _log(run, net, edit, "free energy high and not falling")
    if round_ % 3 == 0:
        _apoptosis(net, run)
    if round_ % 2 == 0:
        _dendrite(net, run, gen)


def _apoptosis(net: Network, run: RunDir) -> None:
    t = net.tissue
    hidden = (t.role == HIDDEN).nonzero().flatten()
    for row in hidden[t.gate_ema[hidden].argsort()][:3].tolist():
        try:
            edit = morpho.remove(net, int(t.cell_id[row]))
        except ValueError:  # it would cut every input from every output: try the next
            continue
        _log(run, net, edit, "gate below threshold")
        return


def _dendrite(net: Network, run: RunDir, gen: torch.Generator) -> None:
    t = net.tissue
    a, b = torch.randint(t.num_nodes, (2,), generator=gen).tolist()
    if t.level[a] == t.level[b]:
        return
    a, b = (a, b) if t.level[a] < t.level[b] else (b, a)
    if ((t.edge_index[0] == a) & (t.edge_index[1] == b)).any():
        return
    edit = morpho.connect(net, int(t.cell_id[a]), int(t.cell_id[b]))
    _log(run, net, edit, "largest candidate gradient")


def _log(run: RunDir, net: Network, edit: morpho.Edit, reason: str) -> None:
    run.log_event({"step": net.step, "kind": edit.kind, **edit.info, "reason": reason})


def _walk_statistics(net: Network, gen: torch.Generator) -> None:
    """A random walk of the statistics the scheduler reads; daughters relieve their load."""
    t = net.tissue
    n = t.num_nodes
    young = (t.birth == net.step).float()  # cells born this step start with half the load
    t.fe_ema = (0.8 * t.fe_ema * (1 - 0.5 * young) + 0.3 * torch.rand(n, generator=gen)).float()
    t.gate_ema = (0.7 * t.gate_ema + 0.3 * torch.rand(n, generator=gen)).clamp(0, 1).float()


def _log_metrics(net: Network, run: RunDir, round_: int) -> None:
    loss = 2.0 + 2.5 * math.exp(-round_ / 8)
    t = net.tissue
    run.log_metrics(
        {
            "kind": "train",
            "step": net.step,
            "loss": loss,
            "bpc": loss / math.log(2),
            "cells": t.num_nodes,
            "edges": int(t.edge_index.shape[1]),
            "params": net.n_params(),
        }
    )
    if round_ % 4 == 0:
        val = loss + 0.1
        run.log_metrics(
            {"kind": "eval", "step": net.step, "val_loss": val, "val_bpc": val / math.log(2)}
        )
