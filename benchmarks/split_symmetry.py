"""Do the two daughters of a split diverge? Cosine of their rows after one split, per policy.

The ``wide`` preset on ``lang`` (pydoc), AdamW, growth off; at step ``--at`` (150) the first
hidden cell is split by :func:`morpho.edits.split_edit` and applied through the trainer
with an optimizer-state policy (:mod:`morpho.optstate`); the run goes on to ``--steps``
(350). Each row is ``policy:noise:mode`` (mode ``independent``: each daughter its own noise
draw, the engine's split; ``antithetic``: ``±δ``, function-preserving to first order), or
``none`` (no split: the paired control for the final loss). Recorded per row and seed: the
cosine similarity of the daughters' rows over every per-cell bank (weights concatenated)
at 0, 50, 100, 150, 200 steps after the split, and the validation bits per character at
the end.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/split_symmetry.py --out /tmp/sym

Prints one line per run and the table; writes ``runs.jsonl`` in ``--out``. Seeds may run
as separate processes (``--seeds 0 --out /tmp/sym/s0`` …); ``--table /tmp/sym/s*/runs.jsonl``
prints the table of them all.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from morpho.callbacks import Callback, StepResult
from morpho.config import RunConfig
from morpho.edits import split_edit
from morpho.grow import build_network, build_task, fit_to_task
from morpho.network import EDGE_BANKS, Network
from morpho.optstate import StatePolicy
from morpho.tissue import HIDDEN
from morpho.trainer import Trainer

POLICIES = ("exact", "asymmetric", "reset")
NOISES = (0.0, 1e-2, 1e-1)
AFTER = (0, 50, 100, 150, 200)  # steps after the split at which the cosine is read
DEFAULT_ROWS = [f"{p}:{n:g}:independent" for p in POLICIES for n in NOISES] + [
    f"{p}:{n:g}:antithetic" for p in ("exact", "asymmetric") for n in (1e-2, 1e-1)
]


def daughters_cosine(net: Network, a: int, b: int) -> float:
    """Cosine of the two cells' rows over every per-cell bank, concatenated."""
    ra, rb = net.row_of(a), net.row_of(b)
    rows = [(v[ra].flatten(), v[rb].flatten()) for k, v in net.banks.items() if k not in EDGE_BANKS]
    x = torch.cat([r[0] for r in rows]).detach().double()
    y = torch.cat([r[1] for r in rows]).detach().double()
    return float(x @ y / (x.norm() * y.norm()))


class SplitWatch(Callback):
    """Reads the daughters' cosine ``AFTER`` steps after the split at step ``at``."""

    def __init__(self, at: int, daughters: tuple[int, int]) -> None:
        self.at, self.daughters = at, daughters
        self.cosine: dict[int, float] = {}

    def on_step_end(self, trainer: Trainer, step: int, result: StepResult) -> None:
        if step - self.at in AFTER:
            self.cosine[step - self.at] = daughters_cosine(trainer.net, *self.daughters)


class Fork(Callback):
    """After step ``at``, runs every row to the end on a copy of the trainer (the same
    first ``at`` steps for every row); the trainer itself goes on as the no-split row."""

    def __init__(self, rows: list[str], seed: int, args: argparse.Namespace) -> None:
        self.rows, self.seed, self.args = rows, seed, args
        self.records: list[dict[str, Any]] = []

    def on_step_end(self, trainer: Trainer, step: int, result: StepResult) -> None:
        if step != self.args.at:
            return
        trainer.callbacks = []  # the copies must not fork again
        for row in self.rows:
            t0 = time.perf_counter()
            child = copy.deepcopy(trainer)  # a step leaves no graph on the trainer
            policy, noise, mode = row.split(":")
            net = child.net
            cid = int(net.tissue.cell_id[net.tissue.role == HIDDEN][0])
            gen = torch.Generator().manual_seed(self.seed)
            anti = mode == "antithetic"
            edit = split_edit(net, cid, float(noise), generator=gen, antithetic=anti)
            torch.manual_seed(self.seed)  # independent noise draws from the global stream
            child.apply_edit(edit, StatePolicy(policy, self.args.rewarm))
            watch = SplitWatch(step, tuple(edit.info["new_cells"]))  # type: ignore[arg-type]
            watch.on_step_end(child, step, result)
            child.callbacks = [watch]
            summary = child.fit()
            rec = {"row": row, "seed": self.seed, "cosine": watch.cosine}
            rec.update(val_bpc=summary["val_bpc"], wall_s=time.perf_counter() - t0)
            self.records.append(rec)
            print(json.dumps(rec), flush=True)


def run_seed(rows: list[str], seed: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every row at ``seed`` (forked after step ``at``) and the no-split row."""
    over = {"growth": {"enabled": False}, "train": {"steps": args.steps, "seed": seed}}
    over["train"].update(eval_every=args.steps, log_every=50)
    cfg = RunConfig.preset("wide").merged(over)
    torch.manual_seed(seed)
    task = build_task(cfg)
    cfg = fit_to_task(cfg, task)
    net = build_network(cfg, task.vocab_size)
    fork = Fork([r for r in rows if r != "none"], seed, args)
    t0 = time.perf_counter()
    summary = Trainer(net, task, cfg.train, callbacks=[fork]).fit()
    rec = {"row": "none", "seed": seed, "cosine": {}, "val_bpc": summary["val_bpc"]}
    rec["wall_s"] = time.perf_counter() - t0 - sum(r["wall_s"] for r in fork.records)
    print(json.dumps(rec), flush=True)
    return [rec, *fork.records]


def table(records: list[dict[str, Any]]) -> str:
    """Mean over seeds per row: cosine at each offset, end bpc and its paired difference
    against the no-split control."""
    control = {r["seed"]: r["val_bpc"] for r in records if r["row"] == "none"}
    head = "| row | seeds | " + " | ".join(f"cos +{k}" for k in AFTER)
    lines = [head + " | val bpc | Δ vs no split |", "|" + "---|" * (len(AFTER) + 4)]
    for row in dict.fromkeys(r["row"] for r in records):
        rs = [r for r in records if r["row"] == row]
        cos = [{int(k): v for k, v in r["cosine"].items()} for r in rs]  # JSON keys are text
        cells = [
            f"{statistics.mean(c[k] for c in cos):.4f}" if all(k in c for c in cos) else "—"
            for k in AFTER
        ]
        bpc = statistics.mean(r["val_bpc"] for r in rs)
        diffs = [r["val_bpc"] - control[r["seed"]] for r in rs if r["seed"] in control]
        delta = f"{statistics.mean(diffs):+.4f}" if diffs and row != "none" else "—"
        lines.append(f"| {row} | {len(rs)} | " + " | ".join(cells) + f" | {bpc:.4f} | {delta} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path)
    p.add_argument("--table", nargs="*", type=Path, help="print the table of these runs.jsonl")
    p.add_argument("--rows", default=",".join(["none", *DEFAULT_ROWS]))
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--at", type=int, default=150)
    p.add_argument("--steps", type=int, default=350)
    p.add_argument("--rewarm", type=int, default=20, help="asymmetric: re-warm steps")
    args = p.parse_args()
    if args.table:
        lines = [line for path in args.table for line in path.read_text().splitlines()]
        print(table([json.loads(line) for line in lines if line.strip()]))
        return
    if args.out is None:
        p.error("--out is required to run")
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    records = []
    with open(args.out / "runs.jsonl", "a") as f:
        for seed in [int(s) for s in args.seeds.split(",")]:
            for rec in run_seed(args.rows.split(","), seed, args):
                records.append(rec)
                f.write(json.dumps(rec) + "\n")
            f.flush()
    print(table(records))


if __name__ == "__main__":
    main()
