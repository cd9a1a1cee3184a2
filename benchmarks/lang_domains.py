"""Continual learning on language domains (pydoc → stdlib → csv) on the one trainer.

Every row is a ``morpho grow --task lang-domains`` run of the wide preset's network
(~126k parameters) for ``steps_per_domain`` steps per domain, the same batches per seed:

* ``naive``: fine-tuning, nothing else (also the learner with growth off: the plasticity
  policy keys on cells born for a later domain, so without growth it never acts);
* ``replay-1%`` / ``replay-10%``: that fraction of each finished domain's training text
  stored, a quarter of every later batch drawn from it;
* ``joint``: every batch from all domains (the non-continual reference);
* ``morpho``: ``domain_grow`` (cells born in series on a jump of the tissue's surprise,
  the cross-entropy EMA) with the plasticity policy freezing the cells of older domains;
* ``known``: the same births at the known boundaries (the control of the trigger);
* ``alone-<domain>``: the morpho learner on one domain only: the reference each domain's
  bpc right after it is compared with, and the stationary test of the trigger (no fires).

Each row's learning rate is the best of ``--lrs`` on seed 0 (final all-domain val bpc;
``alone`` rows: their domain's), then seeds 1… run at it. There is no separate test
split: the validation windows both choose the rate and are reported.

    OMP_NUM_THREADS=1 python benchmarks/lang_domains.py --out /tmp/lang_domains --jobs 3 \
        --sweep-rows naive,replay-10%,morpho --seed-rows morpho,replay-10%,naive,known,growth-off

Prints the table (mean ± standard error over seeds, paired differences against
``morpho``) and writes ``rows.jsonl`` in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from morpho.callbacks import Callback
from morpho.config import RunConfig
from morpho.grow import grow
from morpho.plasticity import Plasticity, PlasticityConfig
from morpho.sims.cl_runs import growth_events, run_cl_figures
from morpho.sims.lang_domains import DOMAINS


class KnownSelfReplay(Callback):
    """Self-replay at the known boundaries with no cell born: the learner with growth off."""

    def __init__(self, steps_per_domain: int, windows: int) -> None:
        self.spd = steps_per_domain
        self.policy = Plasticity(PlasticityConfig(enabled=True, self_replay=windows))

    def on_step_end(self, trainer: Any, step: int, result: Any) -> None:
        due = step // self.spd
        if step % self.spd == 0 and due > self.policy.remembered and step < trainer.cfg.steps:
            self.policy.remembered = due
            trainer.task.remember(self.policy.sample(trainer))


REPORT = "LANG_DOMAINS_REPORT"  # "1": read the finished runs, start none

GROWTH = {
    "rules": ["domain_grow"],
    "interval": 10,
    "start": 50,
    "until": 1.0,
    "max_cells": 12,
    "max_events_per_round": 3,
}
PLASTICITY = {"enabled": True, "old_lr_scale": 0.0, "shared_lr_scale": 1.0, "self_replay": 256}


def rows(spd: int, per_jump: int, plasticity: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each row's overrides of the wide preset (task options merged by the caller;
    ``self_replay_known``: the growth-off control's callback)."""
    off: dict[str, Any] = {"growth": {"enabled": False}}
    rule = {"per_jump": per_jump}
    learner = {"growth": {**GROWTH, "domain_grow": rule}, "plasticity": plasticity}
    known_rule = {**rule, "known": spd}
    known = {"growth": {**GROWTH, "domain_grow": known_rule}, "plasticity": plasticity}
    out: dict[str, dict[str, Any]] = {
        "naive": off,
        "replay-1%": {**off, "task_options": {"replay": 0.01}},
        "replay-10%": {**off, "task_options": {"replay": 0.1}},
        "joint": {**off, "task_options": {"joint": True}},
        "morpho": learner,
        "known": known,
    }
    if plasticity.get("self_replay"):
        out["growth-off"] = {**off, "self_replay_known": plasticity["self_replay"]}
    for d in DOMAINS:
        out[f"alone-{d}"] = {**learner, "task_options": {"domains": d}}
    return out


def config(row: dict[str, Any], spd: int, lr: float, seed: int) -> RunConfig:
    opts = {"steps_per_domain": spd, **row.get("task_options", {})}
    n = len(opts.get("domains", ",".join(DOMAINS)).split(","))
    over = {k: v for k, v in row.items() if k not in ("task_options", "self_replay_known")}
    base = {
        "task": "lang-domains",
        "task_options": opts,
        "train": {"steps": n * spd, "eval_every": spd, "lr": lr, "seed": seed},
        "network": {"seed": seed},
    }
    return RunConfig.preset("wide").merged(base).merged(over)


def run_one(args: tuple[str, dict[str, Any], int, float, int, str]) -> dict[str, Any] | None:
    """One run (skipped when its summary exists): its figures and growth events; None for
    a missing run under ``--report``."""
    name, row, spd, lr, seed, out = args
    path = Path(out) / name / f"lr{lr:g}" / f"seed{seed}"
    if not (path / "summary.json").is_file() and os.environ.get(REPORT) == "1":
        return None
    if not (path / "summary.json").is_file():
        n = row.get("self_replay_known", 0)
        extra: list[Callback] = [KnownSelfReplay(spd, n)] if n else []
        grow(config(row, spd, lr, seed), path, overwrite=True, callbacks=extra)
    fig = run_cl_figures(path)
    fires = [e["step"] for e in growth_events(path) if e.get("rule") == "domain_grow"]
    wall = json.loads((path / "summary.json").read_text())
    return {"row": name, "lr": lr, "seed": seed, **fig, "fires": fires, "wall": wall}


def score(r: dict[str, Any]) -> float:
    return float(r["avg_bpc"])


def mean_se(xs: list[float]) -> tuple[float, float]:
    m = sum(xs) / len(xs)
    if len(xs) < 2:
        return m, math.nan
    var = sum((x - m) ** 2 for x in xs) / (len(xs) - 1)
    return m, math.sqrt(var / len(xs))


def fmt(xs: list[float]) -> str:
    m, se = mean_se(xs)
    return f"{m:.3f} ± {se:.3f}" if se == se else f"{m:.3f}"


def table(results: list[dict[str, Any]], spd: int) -> str:
    """Markdown table: per row mean ± se over seeds, paired differences against morpho."""
    by = {r["row"]: {x["seed"]: x for x in results if x["row"] == r["row"]} for r in results}
    ref = by.get("morpho", {})
    lines = [
        "| row | lr | seeds | avg bpc | BWT | last-domain bpc | bpc right after each "
        "domain | Δ avg vs morpho (paired) | growth fires (steps) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, seeds in by.items():
        rs = list(seeds.values())
        diag = " / ".join(
            f"{sum(r['diag'][j] for r in rs) / len(rs):.3f}" for j in range(len(rs[0]["diag"]))
        )
        common = sorted(set(seeds) & set(ref))
        delta = (
            fmt([seeds[s]["avg_bpc"] - ref[s]["avg_bpc"] for s in common])
            if name != "morpho" and common and len(rs[0]["diag"]) > 1
            else ""
        )
        fires = "; ".join(",".join(map(str, r["fires"])) or "none" for r in rs)
        lines.append(
            f"| {name} | {rs[0]['lr']:g} | {len(rs)} | {fmt([r['avg_bpc'] for r in rs])} | "
            f"{fmt([r['bwt'] for r in rs])} | {fmt([r['last_bpc'] for r in rs])} | {diag} | "
            f"{delta} | {fires} |"
        )
    return "\n".join(lines)


def paired(results: list[dict[str, Any]], a: str, b: str, key: str) -> str:
    """``a − b`` of ``key``, paired by seed: mean ± standard error (n seeds)."""
    by = {(r["row"], r["seed"]): r for r in results}
    seeds = sorted(s for (n, s) in by if n == a and (b, s) in by)
    if not seeds:
        return "n/a"
    return f"{fmt([by[a, s][key] - by[b, s][key] for s in seeds])} (n={len(seeds)})"


def goals(results: list[dict[str, Any]]) -> str:
    """The paired differences the goals are judged on."""
    return "\n".join(
        [
            f"avg bpc, morpho − replay-10%: {paired(results, 'morpho', 'replay-10%', 'avg_bpc')}",
            f"avg bpc, morpho − naive: {paired(results, 'morpho', 'naive', 'avg_bpc')}",
            f"last bpc, morpho − naive: {paired(results, 'morpho', 'naive', 'last_bpc')}",
            f"avg bpc, growth-off − morpho: {paired(results, 'growth-off', 'morpho', 'avg_bpc')}",
            f"avg bpc, known − morpho: {paired(results, 'known', 'morpho', 'avg_bpc')}",
        ]
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="/tmp/lang_domains")
    p.add_argument("--steps-per-domain", type=int, default=200)
    p.add_argument("--per-jump", type=int, default=2)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--lrs", default="1.5e-2,7.5e-3", help="the first: rows not swept")
    p.add_argument("--rows", default="", help="comma-separated subset of rows (default: all)")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--report", action="store_true", help="read the finished runs, start none")
    p.add_argument("--old-lr-scale", type=float, default=PLASTICITY["old_lr_scale"])
    p.add_argument("--self-replay", type=int, default=PLASTICITY["self_replay"])
    p.add_argument("--sweep-rows", default="", help="rows whose lr is swept (default: all)")
    p.add_argument(
        "--seed-rows",
        default="",
        help="rows run on every seed (default: all; "
        "the others: seed 0), in this order seed by seed",
    )
    a = p.parse_args()
    if a.report:
        os.environ[REPORT] = "1"
    spd, lrs = a.steps_per_domain, [float(x) for x in a.lrs.split(",")]
    plasticity = {**PLASTICITY, "old_lr_scale": a.old_lr_scale, "self_replay": a.self_replay}
    all_rows = rows(spd, a.per_jump, plasticity)
    chosen = {k: v for k, v in all_rows.items() if not a.rows or k in a.rows.split(",")}
    with ProcessPoolExecutor(a.jobs) as pool:
        swept = [n for n in a.sweep_rows.split(",") if n] if a.sweep_rows else list(chosen)
        seeded = a.seed_rows.split(",") if a.seed_rows else list(chosen)
        seeded = [n for n in seeded if n in chosen]
        seeds = range(1, a.seeds)
        # rows with one rate run every seed at once; swept rows' seeds wait for the sweep
        fixed = [
            (n, chosen[n], spd, lrs[0], s, a.out) for s in seeds for n in seeded if n not in swept
        ]
        todo = [(n, r, spd, lr, 0, a.out) for n, r in chosen.items() for lr in lrs]
        todo = [j for j in todo if j[0] in swept or j[3] == lrs[0]]
        done = [x for x in pool.map(run_one, todo + fixed) if x is not None]
        sweep = [x for x in done if x["seed"] == 0]
        chosen = {n: r for n, r in chosen.items() if any(x["row"] == n for x in sweep)}
        best = {n: min((x for x in sweep if x["row"] == n), key=score)["lr"] for n in chosen}
        rest = [
            (n, chosen[n], spd, best[n], s, a.out)
            for s in seeds
            for n in seeded
            if n in swept and n in chosen
        ]
        more = [x for x in done if x["seed"] > 0] + [
            x for x in pool.map(run_one, rest) if x is not None
        ]
        results = [x for x in sweep if x["lr"] == best[x["row"]]] + more
    with open(Path(a.out) / "rows.jsonl", "w") as f:
        for x in sweep + more:
            f.write(json.dumps(x) + "\n")
    print(f"steps per domain {spd}; lr sweep (seed 0, avg bpc):")
    for n in chosen:
        print(
            f"  {n}: "
            + ", ".join(f"{x['lr']:g} → {x['avg_bpc']:.3f}" for x in sweep if x["row"] == n)
        )
    print(table(results, spd))
    print(goals(results))


if __name__ == "__main__":
    main()
