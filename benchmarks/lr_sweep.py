"""Learning-rate sweep of the growth bench's rows, seed 0: best val bpc at each rate.

The rows of ``benchmarks/growth_saving.py`` at a run preset's budget (default ``wide``):
the preset's network trained fixed (growth off), and the static Transformer, the G_stack
Transformer (doubled at a quarter of the steps) and the GRU at that network's parameter
count. Every row on the same batches through the project's ``Trainer``; each rate's best
val bpc is printed as one JSON line, and the best per row last.

    OMP_NUM_THREADS=1 python benchmarks/lr_sweep.py --preset wide --corpus pydoc
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from morpho.config import RunConfig
from morpho.grow import build_network, build_task
from morpho.sims.baselines import StackAt, build_baseline, build_stack_peer
from morpho.sims.bench import train_row, with_eval_points

GRIDS = {
    "fixed": (7.5e-3, 1.5e-2, 3e-2),
    "transformer": (3e-3, 6e-3, 1.2e-2, 2.4e-2),
    "transformer-stack": (6e-3, 1.2e-2, 2.4e-2),
    "gru": (6e-3, 1.2e-2, 2.4e-2),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--preset", default="wide")
    ap.add_argument("--corpus", default="pydoc")
    ap.add_argument("--rows", nargs="*", default=list(GRIDS), choices=list(GRIDS))
    ap.add_argument("--out", type=Path, default=Path("runs/lr-sweep"))
    ap.add_argument("--steps", type=int, default=0, help="override the preset's steps")
    a = ap.parse_args()
    steps = {"train": {"steps": a.steps}} if a.steps else {}
    base = RunConfig.preset(a.preset).merged(
        {"growth": {"enabled": False}, "task_options": {"corpus": a.corpus}, **steps}
    )
    base = with_eval_points(base, 24)
    task = build_task(base)
    torch.manual_seed(base.train.seed)
    params = build_network(base, task.vocab_size).n_params()
    best: dict[str, tuple[float, float]] = {}
    for row in a.rows:
        for lr in GRIDS[row]:
            cfg = base.merged({"train": {"lr": lr}})
            callbacks = []
            model: torch.nn.Module
            if row == "fixed":
                torch.manual_seed(base.train.seed)
                model = build_network(base, task.vocab_size)
            elif row == "transformer-stack":
                model = build_stack_peer(task.vocab_size, params, seed=0)
                callbacks = [StackAt(max(1, round(0.25 * cfg.train.steps)))]
            else:
                model = build_baseline(row, task.vocab_size, params, seed=0)
            out = a.out / f"{row}-{lr:g}"
            r = train_row(row, model, cfg, task, out, True, callbacks)
            bpc = float(r["best_val_bpc"])
            print(json.dumps({"row": row, "lr": lr, "params": r["params"], "best_val_bpc": bpc}))
            if row not in best or bpc < best[row][1]:
                best[row] = (lr, bpc)
    print(
        json.dumps({"best": {row: {"lr": lr, "best_val_bpc": b} for row, (lr, b) in best.items()}})
    )


if __name__ == "__main__":
    main()
