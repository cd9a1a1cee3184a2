"""Does a cell's signal predict what an edit of that cell buys? Every cell tried, paired.

A blind control says whether a rule's choices beat random ones over a whole run; this asks
the sharper question underneath, with many paired samples: at one training state, apply
the same edit to **every** hidden cell in turn (each on its own copy of the trainer), train
each copy the same ``--recover`` steps on the same batches, and see whether the signal a
rule reads ranks the cells by the val bpc they end at.

States: the ``--network`` seed tissue (default: 1-4-4-1, 20-channel wide cells, as
``benchmarks/grow_prune_*.toml``) trained ``S`` steps (``--at``) of a run of ``S +
--recover`` steps (the copies anneal to its end), per seed. Edits and the signals read for
them, on held-apart training batches before the edit:

* ``remove`` — gate activity (mean gate of the cell: the apoptosis rule's order, lowest
  first), surprise (its local prediction error), knockout (the loss rise when it is knocked
  out; what the scheduler's knockout test reads);
* ``split`` — the splitting matrix's ``λ_min`` (split_steepest: most negative first), the
  daughters at ``θ ± ε‖θ‖v``; beside it the same cell split in a random direction of the
  same size (antithetic noise ``ε``), the blind edit a control makes.

Reported per signal: the mean Spearman correlation between the signal (a rule picks the
lowest) and the val bpc after recovery, over states; and the *gain of the
rule's pick*: val bpc of the cell the signal ranks first minus the mean over all cells (what
a random pick gets on average), paired by state, mean ± standard error (negative: the
signal picks better than random). Every copy uses the optimizer-state policy the scheduler
uses (``asymmetric``).

    OMP_NUM_THREADS=1 python benchmarks/signal_information.py --seeds 0 1 2 --at 150 300 \\
        --jobs 2 --out runs/signal_information.json
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, cast

import torch

from morpho.config import RunConfig
from morpho.edits import remove_edit, split_edit
from morpho.grow import build_network, build_task, fit_to_task
from morpho.growth.probes import knockout_dloss
from morpho.growth.splitting import splitting_probe
from morpho.optstate import StatePolicy
from morpho.tissue import HIDDEN
from morpho.trainer import Callback, Trainer

POLICY = StatePolicy("asymmetric")
EPSILON = 0.1  # split_steepest's default offset size
SIGNALS = {  # signal -> the edit it is judged on (a rule picks the cell of the lowest value)
    "gate": "remove",
    "surprise": "remove",
    "knockout": "remove",
    "lambda_min": "split",
    "lambda_min (random direction)": "split-random",
}


def spearman(a: list[float], b: list[float]) -> float:
    def ranks(x: list[float]) -> list[float]:
        order = sorted(range(len(x)), key=lambda i: x[i])
        r = [0.0] * len(x)
        for k, i in enumerate(order):
            r[i] = float(k)
        return r

    ra, rb = ranks(a), ranks(b)
    ma, mb = statistics.mean(ra), statistics.mean(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb, strict=True))
    var = math.sqrt(sum((x - ma) ** 2 for x in ra) * sum((y - mb) ** 2 for y in rb))
    return cov / var if var else 0.0


def signals(trainer: Trainer, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, Any]:
    """Each hidden cell's signals at this state, averaged over ``batches``."""
    net = trainer.net
    rows = (net.tissue.role == HIDDEN).nonzero().flatten().tolist()
    gate = torch.zeros(net.tissue.num_nodes)
    surprise = torch.zeros(net.tissue.num_nodes)
    knock = {r: 0.0 for r in rows}
    with torch.no_grad():
        for x, _ in batches:
            out = net.run(x)
            gate += out.stats["gate_mean"].float().cpu() / len(batches)
            surprise += out.stats["surprise"].float().cpu() / len(batches)
    for x, y in batches:
        for r in rows:
            knock[r] += knockout_dloss(net, r, (x, y)) / len(batches)
    probe = splitting_probe(net, batches[0], torch.Generator().manual_seed(0))
    assert probe is not None
    return {
        "rows": rows,
        "cells": [int(net.tissue.cell_id[r]) for r in rows],
        "gate": [float(gate[r]) for r in rows],
        "surprise": [float(surprise[r]) for r in rows],
        "knockout": [knock[r] for r in rows],
        "lambda_min": [float(cast(torch.Tensor, probe["min_eig"])[r]) for r in rows],
        "probe": probe,
    }


def outcome(trainer: Trainer, edit_kind: str, cell: int, row: int, probe: dict[str, Any],
            seed: int) -> float:  # fmt: skip
    """Val bpc at the run's end of a copy of ``trainer`` with ``cell`` edited."""
    child = copy.deepcopy(trainer)
    net = child.net
    gen = torch.Generator().manual_seed(seed)
    if edit_kind == "remove":
        edit = remove_edit(net, cell)
    elif edit_kind == "split":
        size = EPSILON * float(probe["theta_norm"][row])
        offsets = {k: size * v[row] for k, v in probe["direction"].items()}
        edit = split_edit(net, cell, generator=gen, offsets=offsets)
    else:
        edit = split_edit(net, cell, EPSILON, generator=gen, antithetic=True)
    child.apply_edit(edit, POLICY)
    child.callbacks = []
    return float(child.fit()["val_bpc"])


class Fork(Callback):
    """After step ``at``: the signals, then every edit of every hidden cell on a copy of the
    trainer run to the end; the trainer itself goes on unedited (the ``none`` reference)."""

    def __init__(self, at: int, seed: int, batches: list[tuple[torch.Tensor, torch.Tensor]]):
        self.at, self.seed, self.batches = at, seed, batches
        self.result: dict[str, Any] = {}

    def on_step_end(self, trainer: Trainer, step: int, result: Any) -> None:
        if step != self.at:
            return
        trainer.callbacks = []  # the copies must not fork again
        sig = signals(trainer, self.batches)
        probe = sig.pop("probe")
        after: dict[str, list[float]] = {"remove": [], "split": [], "split-random": []}
        for kind, values in after.items():
            for cell, row in zip(sig["cells"], sig["rows"], strict=True):
                values.append(outcome(trainer, kind, cell, row, probe, self.seed))
        self.result = {**sig, "outcome": after}


def state(job: tuple[int, int, int, dict[str, Any]]) -> dict[str, Any]:
    """One training state: ``(seed, at, recover, network overrides)``; every edit on every
    hidden cell."""
    seed, at, recover, network = job
    steps = at + recover
    over = {
        "network": {**network, "seed": seed},
        "growth": {"enabled": False},
        "train": {"steps": steps, "seed": seed, "eval_every": steps, "log_every": steps},
    }
    cfg = RunConfig.preset("wide").merged(over)
    torch.manual_seed(seed)
    task = build_task(cfg)
    cfg = fit_to_task(cfg, task)
    net = build_network(cfg, task.vocab_size)
    gen = torch.Generator().manual_seed(10_000 + seed)  # batches no training step draws
    batches = [task.batch("train", cfg.train.batch_size, cfg.train.seq_len, gen) for _ in range(4)]
    fork = Fork(at, seed, batches)
    none = float(Trainer(net, task, cfg.train, callbacks=[fork]).fit()["val_bpc"])
    return {"seed": seed, "at": at, "none": none, **fork.result}


def report(states: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, kind in SIGNALS.items():
        source = "lambda_min" if name.startswith("lambda_min") else name
        rhos, gains = [], []
        for s in states:
            signal = s[source]
            after = s["outcome"][kind]
            rhos.append(spearman(signal, after))
            pick = min(range(len(signal)), key=lambda i: signal[i])
            gains.append(after[pick] - statistics.mean(after))
        se = statistics.stdev(gains) / math.sqrt(len(gains)) if len(gains) > 1 else math.nan
        out[name] = {
            "edit": kind,
            "spearman_mean": statistics.mean(rhos),
            "spearman": rhos,
            "pick_minus_mean": statistics.mean(gains),
            "pick_minus_mean_se": se,
            "gains": gains,
        }
    by_split = [
        statistics.mean(s["outcome"]["split"]) - statistics.mean(s["outcome"]["split-random"])
        for s in states
    ]
    out["split along v − random direction (mean over cells)"] = {
        "mean": statistics.mean(by_split),
        "se": statistics.stdev(by_split) / math.sqrt(len(by_split)) if len(by_split) > 1 else 0,
        "per_state": by_split,
    }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--at", type=int, nargs="+", default=[150, 300], help="fork steps")
    ap.add_argument("--recover", type=int, default=100, help="steps after the edit")
    ap.add_argument("--d-cell", type=int, default=20)
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 4, 4, 1])
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--out", type=Path, required=True, help="a .json file")
    a = ap.parse_args()
    network = {"d_cell": a.d_cell, "level_sizes": a.levels}
    jobs = [(s, at, a.recover, network) for s in a.seeds for at in a.at]
    if a.jobs > 1:
        with ProcessPoolExecutor(a.jobs) as pool:
            states = list(pool.map(state, jobs))
    else:
        states = [state(j) for j in jobs]
    rep = report(states)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"states": states, "report": rep, "args": vars(a)}, indent=2,
                                default=str) + "\n")  # fmt: skip
    print("| signal | edit | Spearman (signal, val bpc after) | pick − mean over cells |")
    print("|---|---|---:|---:|")
    for name, r in rep.items():
        if "edit" in r:
            print(
                f"| {name} | {r['edit']} | {r['spearman_mean']:+.3f} | "
                f"{r['pick_minus_mean']:+.4f} ± {r['pick_minus_mean_se']:.4f} |"
            )
    r = rep["split along v − random direction (mean over cells)"]
    print(f"split along v − random direction, mean over cells: {r['mean']:+.4f} ± {r['se']:.4f}")


if __name__ == "__main__":
    main()
