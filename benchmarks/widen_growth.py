"""Width growth against a fixed width on the wide preset: best val bpc and dense train FLOPs.

Rows (each through ``morpho.grow.grow`` with a :class:`~morpho.flops.FlopCounter`, only the
``widen`` rule or no growth at all, the wide preset's loop, the same batches per seed):

* ``fixed-38``: the preset's cells (``d_cell`` 38, two heads of 19), growth off;
* ``fixed-19``: half the width (one head of 19), growth off;
* ``fixed-38-nw19``: the widened network's config from scratch (its norms over ``d`` average
  over 19 channels, as a widened cell's do), growth off;
* ``widen@S``: starts at 19 and widens to 38 at step ``S`` (the rule with a tolerance no
  fall reaches: it fires at its first check with history);
* ``widen@S-rescale``: the same with ``widen_norms = "rescale"`` (the widened cell is a
  plain 38-channel cell: the norm gains are rescaled instead of the norms' width kept);
* ``widen-plateau``: starts at 19; the rule's own plateau test decides (defaults, bounded by
  ``max_fraction``).

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/widen_growth.py --out /tmp/widen --at 150

Prints one line per row and writes ``rows.jsonl`` (with each eval curve) in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from morpho.config import RunConfig
from morpho.flops import FlopCounter
from morpho.grow import grow
from morpho.rundir import read_jsonl

INTERVAL = 25  # steps between growth checks


def rows(at: list[int], steps: int, interval: int = INTERVAL) -> dict[str, dict[str, Any]]:
    """The configs of every row, as overrides of the wide preset."""
    narrow = {"network": {"d_cell": 19, "n_heads": 1}}
    out: dict[str, dict[str, Any]] = {
        "fixed-38": {"growth": {"enabled": False}},
        "fixed-19": {**narrow, "growth": {"enabled": False}},
        # the widened network's own config (norms over 19 channels), trained from scratch
        "fixed-38-nw19": {
            "network": {"cell_options": {"norm_width": 19}},
            "growth": {"enabled": False},
        },
    }
    for s in at:  # the rule needs two checks of history: its first check with one is at s
        rule = {"to": 38, "tolerance": 1e9, "patience": 1, "max_fraction": s / steps}
        growth = {"rules": ["widen"], "start": s - interval, "interval": interval, "widen": rule}
        out[f"widen@{s}"] = {**narrow, "growth": growth}
        rescaled = {"d_cell": 19, "n_heads": 1, "cell_options": {"widen_norms": "rescale"}}
        out[f"widen@{s}-rescale"] = {"network": rescaled, "growth": growth}
    plateau = {"rules": ["widen"], "start": 2 * interval, "interval": interval, "widen": {"to": 38}}
    out["widen-plateau"] = {**narrow, "growth": plateau}
    return out


def run_row(name: str, overrides: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    train = {"steps": args.steps, "seed": args.seed, "eval_every": args.eval_every}
    cfg = RunConfig.preset("wide").merged({**overrides, "train": train})
    path = args.out / f"{name}-{args.steps}steps-s{args.seed}"
    start = time.perf_counter()
    summary = grow(cfg, path, overwrite=True, callbacks=[FlopCounter()])
    curve = [
        (r["step"], r["dense_train_flops"], r["val_bpc"])
        for r in read_jsonl(path / "metrics.jsonl")
        if r.get("kind") == "flops"
    ]
    events = [
        (e["step"], e.get("old_width"), e.get("new_width"))
        for e in read_jsonl(path / "events.jsonl")
    ]
    return {
        "row": name,
        "seed": args.seed,
        "steps": args.steps,
        "best_val_bpc": summary["best_val_bpc"],
        "dense_train_flops": summary["dense_train_flops"],
        "params": summary["params"],
        "wall_s": time.perf_counter() - start,
        "events": events,
        "curve": curve,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--at", type=int, nargs="*", default=[150])
    parser.add_argument("--rows", nargs="*", default=None, help="rows to run (default: all)")
    parser.add_argument("--interval", type=int, default=INTERVAL, help="steps between checks")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, overrides in rows(args.at, args.steps, args.interval).items():
        if args.rows and name not in args.rows:
            continue
        record = run_row(name, overrides, args)
        with open(args.out / "rows.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        print(
            f"{name:14s} seed {args.seed}  best val bpc {record['best_val_bpc']:.4f}  "
            f"dense train FLOPs {record['dense_train_flops']:.3e}  params {record['params']}  "
            f"events {record['events']}  {record['wall_s']:.0f} s",
            flush=True,
        )


if __name__ == "__main__":
    main()
