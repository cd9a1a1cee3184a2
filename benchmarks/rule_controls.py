"""Does a growth rule's signal decide? One rule against its blind controls, each row tuned.

For a growth config (``--grow``, e.g. ``benchmarks/grow_split_steepest.toml``) on a bench
preset, trains per seed:

* ``grown``    — the rule reading its signal;
* ``random``   — ``grown``'s recorded events replayed blind at the same steps on cells drawn
  at random (``[growth] control``, :mod:`morpho.growth.control`; a rule whose edit reads a
  tensor from the signal replays its blind edit of the same size, ``Event.replay``);
* ``schedule`` — the same events at evenly spaced steps over the growth window, drawn cells;
* ``static``   — the seed tissue with growth off (the simplest model: no growth at all).

Every row gets its own learning rate: on the first seed each row is trained at every rate of
``--lr-grid`` and keeps the one with the lowest best val bpc (the controls replay the trace
of ``grown`` at *its* chosen rate); the other seeds run each row at its chosen rate. The
report pairs rows by seed: ``grown − row`` in best-so-far val bpc at equal training FLOPs
(the smaller of the two totals; every FLOP of the run counted, the rule's probes included),
mean ± standard error over seeds, and whether it is beyond two standard errors. Wall time
is reported beside FLOPs (``--jobs`` rows run side by side, one torch thread each).

    OMP_NUM_THREADS=1 python benchmarks/rule_controls.py --grow benchmarks/grow_split_steepest.toml \\
        --preset wide --corpus pydoc --seeds 0 1 2 --lr-grid 7.5e-3 1.5e-2 3e-2 --jobs 2 \\
        --out runs/rule-controls-split

Writes ``OUT/<seed>/<row>@<lr>/`` run directories and ``OUT/controls.json``; prints a table.
A row whose run directory holds a ``summary.json`` is read, not trained again (``--fresh``
trains every row again), so an interrupted bench continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from morpho.config import RunConfig
from morpho.files import load_toml
from morpho.sims.bench import bench_config, machine, morpho_row, with_eval_points
from morpho.sims.saving import loss_at, read_curve

ROWS = ("grown", "random", "schedule", "static")
CONTROLS = ("random", "schedule", "static")
EVAL_POINTS = 24


def run_dir(out: Path, seed: int, row: str, lr: float) -> Path:
    return out / str(seed) / f"{row}@{lr:g}"


def row_config(base: RunConfig, grow: dict[str, Any], row: str, seed: int, lr: float,
               trace: Path | None) -> RunConfig:  # fmt: skip
    """The run config of ``row`` at ``seed`` and ``lr`` (``trace``: grown's events)."""
    cfg = base.merged({"train": {"seed": seed, "lr": lr}, "network": {"seed": seed}})
    if row == "static":
        return with_eval_points(cfg.merged({"growth": {"enabled": False}}), EVAL_POINTS)
    cfg = cfg.merged(grow)
    if row in ("random", "schedule"):
        assert trace is not None
        cfg = cfg.merged({"growth": {"control": row, "control_from": str(trace.resolve())}})
    return with_eval_points(cfg, EVAL_POINTS)


def train(job: tuple[dict[str, Any], str, str]) -> dict[str, Any]:
    """One row (in a worker process): ``(config dict, row name, run directory)``."""
    cfg_dict, row, path = job
    p = Path(path)
    t0 = time.perf_counter()
    morpho_row(p.name, RunConfig().merged(cfg_dict), p.parent, True)
    (p / "wall.json").write_text(json.dumps({"seconds": time.perf_counter() - t0}) + "\n")
    return result(p)


def result(path: Path) -> dict[str, Any]:
    summary = json.loads((path / "summary.json").read_text())
    wall = path / "wall.json"
    curve = read_curve(path)
    return {
        "path": str(path),
        "best_val_bpc": curve.best,
        "val_bpc": summary["val_bpc"],
        "train_flops": curve.total,
        "params": summary.get("params"),
        "edits": summary.get("edits", 0),
        "wall_s": json.loads(wall.read_text())["seconds"] if wall.exists() else math.nan,
    }


def run_all(jobs: list[tuple[dict[str, Any], str, str]], workers: int,
            fresh: bool) -> list[dict[str, Any]]:  # fmt: skip
    """Train ``jobs`` (``workers`` at once); a finished run directory is read instead."""
    todo = [j for j in jobs if fresh or not (Path(j[2]) / "summary.json").exists()]
    if todo:
        if workers > 1 and len(todo) > 1:
            with ProcessPoolExecutor(min(workers, len(todo))) as pool:
                list(pool.map(train, todo))
        else:
            for j in todo:
                train(j)
    return [result(Path(j[2])) for j in jobs]


def tune(make: Callable[[float], tuple[dict[str, Any], str, str]], grid: list[float],
         workers: int, fresh: bool) -> tuple[float, dict[float, float]]:  # fmt: skip
    """Train one row at every rate of ``grid``; ``(best rate, {rate: best val bpc})``."""
    results = run_all([make(lr) for lr in grid], workers, fresh)
    scores = {lr: r["best_val_bpc"] for lr, r in zip(grid, results, strict=True)}
    return min(scores, key=lambda lr: scores[lr]), scores


def paired(rows: dict[str, dict[int, dict[str, Any]]], control: str) -> dict[str, Any]:
    """``grown − control`` at equal FLOPs per seed; mean, standard error, beyond 2 s.e.?"""
    diffs = []
    for seed, g in rows["grown"].items():
        c = rows[control][seed]
        gc, cc = read_curve(g["path"]), read_curve(c["path"])
        at = min(gc.total, cc.total)
        diffs.append(loss_at(gc, at) - loss_at(cc, at))
    mean = statistics.mean(diffs)
    se = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else math.nan
    return {"diffs": diffs, "mean": mean, "se": se, "beyond_2se": bool(abs(mean) > 2 * se)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--grow", type=Path, required=True, help="the rule's TOML config")
    ap.add_argument("--preset", default="wide")
    ap.add_argument("--corpus", default="pydoc")
    ap.add_argument("--data", help="a UTF-8 text file instead of --corpus")
    ap.add_argument("--steps", type=int, help="every row's steps (default: the preset's)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--lr-grid", type=float, nargs="+", default=[7.5e-3, 1.5e-2, 3e-2])
    ap.add_argument("--rows", nargs="+", choices=ROWS, default=list(ROWS))
    ap.add_argument("--jobs", type=int, default=1, help="rows trained side by side")
    ap.add_argument("--fresh", action="store_true", help="train finished rows again")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    if "grown" not in a.rows:
        ap.error("--rows must include grown (the controls replay its events)")
    task = {"task_options": {"data": a.data} if a.data else {"corpus": a.corpus}}
    base, _ = bench_config(a.preset, None, task)
    if a.steps:
        base = base.merged({"train": {"steps": a.steps}})
    grow = load_toml(a.grow)
    a.out.mkdir(parents=True, exist_ok=True)

    def job(row: str, seed: int, lr: float, trace: Path | None) -> tuple[dict[str, Any], str, str]:
        cfg = row_config(base, grow, row, seed, lr, trace)
        return cfg.to_dict(), row, str(run_dir(a.out, seed, row, lr))

    first, grid = a.seeds[0], a.lr_grid
    chosen, scores = {}, {}
    chosen["grown"], scores["grown"] = tune(lambda lr: job("grown", first, lr, None), grid,
                                            a.jobs, a.fresh)  # fmt: skip
    others = [r for r in a.rows if r != "grown"]

    def trace_of(seed: int) -> Path:
        return run_dir(a.out, seed, "grown", chosen["grown"]) / "events.jsonl"

    results = run_all(
        [job(r, first, lr, trace_of(first)) for r in others for lr in grid], a.jobs, a.fresh
    )
    for i, r in enumerate(others):
        row_scores = {lr: results[i * len(grid) + k]["best_val_bpc"] for k, lr in enumerate(grid)}
        scores[r], chosen[r] = row_scores, min(row_scores, key=lambda lr: row_scores[lr])
    for seed in a.seeds[1:]:
        run_all([job("grown", seed, chosen["grown"], None)], 1, a.fresh)
        run_all([job(r, seed, chosen[r], trace_of(seed)) for r in others], a.jobs, a.fresh)
    rows = {
        r: {s: result(run_dir(a.out, s, r, chosen[r])) for s in a.seeds} for r in a.rows
    }  # fmt: skip
    figures = {c: paired(rows, c) for c in others}
    report = {
        "grow": load_toml(a.grow),
        "preset": a.preset,
        "data": a.data or a.corpus,
        "lr_grid": grid,
        "lr_scores_first_seed": {r: {str(k): v for k, v in s.items()} for r, s in scores.items()},
        "lr": chosen,
        "rows": {r: {str(s): v for s, v in by.items()} for r, by in rows.items()},
        "grown_minus": figures,
        "machine": machine(),
    }
    (a.out / "controls.json").write_text(json.dumps(report, indent=2) + "\n")
    print("| row | lr | seed | best val bpc | train FLOPs | params | edits | wall s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r, by in rows.items():
        for s, v in by.items():
            print(
                f"| {r} | {chosen[r]:g} | {s} | {v['best_val_bpc']:.4f} | {v['train_flops']:.3e}"
                f" | {v['params']} | {v['edits']} | {v['wall_s']:.0f} |"
            )
    for c, f in figures.items():
        diffs = " / ".join(f"{d:+.4f}" for d in f["diffs"])
        verdict = "beyond 2 s.e." if f["beyond_2se"] else "within 2 s.e."
        print(f"grown − {c} at equal FLOPs: {f['mean']:+.4f} ± {f['se']:.4f} ({diffs}; {verdict})")


if __name__ == "__main__":
    main()
