"""Does a growth rule's signal decide? One rule against its blind controls, each row tuned.

For a growth config (``--grow``, e.g. ``benchmarks/grow_split_steepest.toml``; default: the
preset's own rules) on a preset of a task (``--task lang``, ``digits`` or ``mnist``), trains
per seed:

* ``grown``    — the rule reading its signal;
* ``random``   — ``grown``'s recorded events replayed blind at the same steps on cells drawn
  at random (``[growth] control``, :mod:`morpho.growth.control`; a rule whose edit reads a
  tensor from the signal replays its blind edit of the same size, ``Event.replay``);
* ``schedule`` — the same events at evenly spaced steps over the growth window, drawn cells;
* ``static``   — the seed tissue with growth off (the simplest model: no growth at all);
* ``mlp``      — image tasks: a one-hidden-layer MLP of the grown network's final parameter
  count, its steps (and schedule) set so that its training FLOPs equal the grown run's
  (``6 · weights · batch`` per step).

Every row gets its own learning rate: on the first seed (``--tune-seeds N``: the first N,
their mean) each row is trained at every rate of ``--lr-grid`` and keeps the one with the
best validation score — val bpc (lang), val
accuracy (images), never a test figure (the controls replay the trace of ``grown`` at *its*
chosen rate); the other seeds run each row at its chosen rate. The
report pairs rows by seed: ``grown − row`` in best-so-far val bpc (images: val error,
``1 − accuracy``) at equal training FLOPs
(the smaller of the two totals; every FLOP of the run counted, the rule's probes included),
mean ± standard error over seeds, and whether it is beyond two standard errors (negative:
the grown run is better); image rows also report their test accuracy. Wall time
is reported beside FLOPs (``--jobs`` rows run side by side, one torch thread each).

    OMP_NUM_THREADS=1 python benchmarks/rule_controls.py \\
        --grow benchmarks/grow_split_steepest.toml --preset wide --corpus pydoc \\
        --seeds 0 1 2 --lr-grid 7.5e-3 1.5e-2 3e-2 --jobs 2 --out runs/rule-controls-split

    OMP_NUM_THREADS=1 python benchmarks/rule_controls.py --task digits --seeds 0 1 2 \\
        --lr-grid 1e-3 3e-3 1e-2 --rows grown random schedule static mlp --jobs 2 \\
        --out runs/rc-digits

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
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from morpho.config import RunConfig
from morpho.files import load_toml
from morpho.grow import build_task, fit_to_task
from morpho.sims.baselines import build_image_mlp
from morpho.sims.bench import bench_config, machine, morpho_row, train_row, with_eval_points
from morpho.sims.saving import Curve, loss_at, read_curve

ROWS = ("grown", "random", "schedule", "static", "mlp")
EVAL_POINTS = 24
SAME_BUDGET = 1e-3  # FLOP totals this close (relative) are one budget
IMAGE_TASKS = ("digits", "mnist")


def score_curve(run: str | Path) -> Curve:
    """Lower is better: val bpc against training FLOPs, or ``1 − val_acc`` (images)."""
    try:
        return read_curve(run, "val_bpc")
    except ValueError:
        acc = read_curve(run, "val_acc")
        return Curve(acc.flops, tuple(1.0 - a for a in acc.loss))


def tie_break(run: str | Path) -> float:
    """Images: the best val loss, which orders rates whose val accuracy ties (a small
    validation split saturates); lang: 0 (val bpc does not tie)."""
    try:
        return read_curve(run, "val_loss").best
    except ValueError:
        return 0.0


def pick(results: dict[float, dict[str, Any]]) -> float:
    """The rate of the best validation score, ties broken by the lower val loss."""
    return min(results, key=lambda lr: (results[lr]["best_score"], results[lr]["best_val_loss"]))


def run_dir(out: Path, seed: int, row: str, lr: float) -> Path:
    return out / str(seed) / f"{row}@{lr:g}"


def row_config(base: RunConfig, grow: dict[str, Any], row: str, seed: int, lr: float,
               trace: Path | None) -> RunConfig:  # fmt: skip
    """The run config of ``row`` at ``seed`` and ``lr`` (``trace``: grown's events)."""
    cfg = base.merged(grow).merged({"train": {"seed": seed, "lr": lr}, "network": {"seed": seed}})
    if row == "static":  # the seed tissue of the grown run, growth off
        return with_eval_points(cfg.merged({"growth": {"enabled": False}}), EVAL_POINTS)
    if row in ("random", "schedule"):
        assert trace is not None
        cfg = cfg.merged({"growth": {"control": row, "control_from": str(trace.resolve())}})
    return with_eval_points(cfg, EVAL_POINTS)


def train(job: tuple[dict[str, Any], str, str]) -> dict[str, Any]:
    """One row (in a worker process): ``(config dict, row name, run directory)``; the
    ``mlp`` row's config carries its parameter target in ``train.mlp_params``."""
    cfg_dict, row, path = job
    p = Path(path)
    t0 = time.perf_counter()
    if row == "mlp":
        params = cfg_dict["train"].pop("mlp_params")
        cfg = RunConfig().merged(cfg_dict)
        task = build_task(cfg)
        pixels = task.seq_len * task.input_dim
        model = build_image_mlp(pixels, task.n_classes, params, seed=cfg.train.seed)
        train_row(p.name, model, cfg, task, p, True)
    else:
        morpho_row(p.name, RunConfig().merged(cfg_dict), p.parent, True)
    (p / "wall.json").write_text(json.dumps({"seconds": time.perf_counter() - t0}) + "\n")
    return result(p)


def result(path: Path) -> dict[str, Any]:
    summary = json.loads((path / "summary.json").read_text())
    wall = path / "wall.json"
    curve = score_curve(path)
    return {
        "path": str(path),
        "best_score": curve.best,  # val bpc, or val error (1 − accuracy)
        "best_val_loss": tie_break(path),
        "test_acc": summary.get("test_acc"),
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


def tune(jobs: dict[float, list[tuple[dict[str, Any], str, str]]], workers: int,
         fresh: bool) -> tuple[float, dict[float, float]]:  # fmt: skip
    """Train one row at every rate (``{rate: its runs on the tuning seeds}``); the rate of
    the best mean validation score over those seeds (:func:`pick`) and ``{rate: that mean}``."""
    flat = [j for runs in jobs.values() for j in runs]
    done = iter(run_all(flat, workers, fresh))
    by_lr = {}
    for lr, runs in jobs.items():
        got = [next(done) for _ in runs]
        by_lr[lr] = {k: statistics.mean(r[k] for r in got) for k in ("best_score", "best_val_loss")}
    return pick(by_lr), {lr: r["best_score"] for lr, r in by_lr.items()}


def paired(rows: dict[str, dict[int, dict[str, Any]]], control: str) -> dict[str, Any]:
    """``grown − control`` per seed at equal FLOPs (best-so-far at the smaller total; totals
    within :data:`SAME_BUDGET` of each other are one budget) and at each run's end; mean,
    standard error, and whether the equal-FLOPs mean is beyond two standard errors."""
    diffs, ends, tests = [], [], []
    for seed, g in rows["grown"].items():
        c = rows[control][seed]
        if g["test_acc"] is not None and c["test_acc"] is not None:
            tests.append(g["test_acc"] - c["test_acc"])
        gc, cc = score_curve(g["path"]), score_curve(c["path"])
        at = min(gc.total, cc.total) * (1 + SAME_BUDGET)
        diffs.append(loss_at(gc, at) - loss_at(cc, at))
        ends.append(gc.best - cc.best)
    mean = statistics.mean(diffs)
    se = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else math.nan
    return {
        "diffs": diffs,
        "mean": mean,
        "se": se,
        "beyond_2se": bool(abs(mean) > 2 * se),
        "diffs_at_end": ends,
        "mean_at_end": statistics.mean(ends),
        **({"test_acc_diffs": tests, "test_acc_mean": statistics.mean(tests),
            "test_acc_se": statistics.stdev(tests) / math.sqrt(len(tests))
            if len(tests) > 1 else math.nan} if tests else {}),
    }  # fmt: skip


def mlp_steps(grown: dict[str, Any], cfg: RunConfig) -> tuple[int, int]:
    """``(steps, parameters)`` of the MLP whose training FLOPs equal ``grown``'s: one step
    costs ``6 · weights · batch`` (forward 2, backward 4 per weight per image)."""
    task = build_task(cfg)
    pixels = task.seq_len * task.input_dim
    model = build_image_mlp(pixels, task.n_classes, int(grown["params"]))
    weights = sum(p.numel() for p in model.parameters() if p.dim() > 1)
    per_step = 6 * weights * cfg.train.batch_size
    return max(1, round(grown["train_flops"] / per_step)), int(grown["params"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--task", default="lang", help="lang | digits | mnist")
    ap.add_argument("--grow", type=Path, help="the rule's TOML config (default: the preset's)")
    ap.add_argument("--preset", help="default: wide (lang), else the task's own preset")
    ap.add_argument("--corpus", default="pydoc", help="lang only")
    ap.add_argument("--data", help="lang only: a UTF-8 text file instead of --corpus")
    ap.add_argument("--steps", type=int, help="every row's steps (default: the preset's)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--lr-grid", type=float, nargs="+", default=[7.5e-3, 1.5e-2, 3e-2])
    ap.add_argument("--rows", nargs="+", choices=ROWS, default=list(ROWS[:4]))
    ap.add_argument(
        "--tune-seeds", type=int, default=1, help="seeds (the first N) each row's rate is chosen on"
    )
    ap.add_argument("--jobs", type=int, default=1, help="rows trained side by side")
    ap.add_argument("--fresh", action="store_true", help="train finished rows again")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    image = a.task in IMAGE_TASKS
    if "grown" not in a.rows:
        ap.error("--rows must include grown (the controls replay its events)")
    if "mlp" in a.rows and not image:
        ap.error(f"the mlp row is for the image tasks ({', '.join(IMAGE_TASKS)})")
    preset = a.preset or (a.task if image else "wide")
    over: dict[str, Any] = {"task": a.task}
    if not image:
        over["task_options"] = {"data": a.data} if a.data else {"corpus": a.corpus}
    base, _ = bench_config(preset, None, over)
    if a.steps:
        base = base.merged({"train": {"steps": a.steps}})
    base = fit_to_task(base, build_task(base))  # an image's own shape
    grow = load_toml(a.grow) if a.grow else {}
    a.out.mkdir(parents=True, exist_ok=True)
    others = [r for r in a.rows if r != "grown"]
    grid = a.lr_grid
    if not 1 <= a.tune_seeds <= len(a.seeds):
        ap.error(f"--tune-seeds must be in [1, {len(a.seeds)}] (the seeds given)")
    chosen: dict[str, float] = {}
    scores: dict[str, dict[float, float]] = {}

    def trace_of(seed: int) -> Path:
        return run_dir(a.out, seed, "grown", chosen["grown"]) / "events.jsonl"

    def job(row: str, seed: int, lr: float) -> tuple[dict[str, Any], str, str]:
        trace = trace_of(seed) if row in ("random", "schedule") else None
        cfg = row_config(base, grow, row, seed, lr, trace)
        if row == "mlp":
            g = result(run_dir(a.out, seed, "grown", chosen["grown"]))
            steps, params = mlp_steps(g, cfg)
            fixed = {"growth": {"enabled": False}, "train": {"steps": steps}}
            cfg = with_eval_points(cfg.merged(fixed), EVAL_POINTS)
            plain = cfg.to_dict()
            plain["train"]["mlp_params"] = params
            return plain, row, str(run_dir(a.out, seed, row, lr))
        return cfg.to_dict(), row, str(run_dir(a.out, seed, row, lr))

    tuning = a.seeds[: a.tune_seeds]
    chosen["grown"], scores["grown"] = tune(
        {lr: [job("grown", s, lr) for s in tuning] for lr in grid}, a.jobs, a.fresh
    )
    for r in others:  # the controls replay grown's events at grown's chosen rate
        chosen[r], scores[r] = tune(
            {lr: [job(r, s, lr) for s in tuning] for lr in grid}, a.jobs, a.fresh
        )
    for seed in a.seeds[a.tune_seeds :]:
        run_all([job("grown", seed, chosen["grown"])], 1, a.fresh)
        run_all([job(r, seed, chosen[r]) for r in others], a.jobs, a.fresh)
    rows = {r: {s: result(run_dir(a.out, s, r, chosen[r])) for s in a.seeds} for r in a.rows}
    figures = {c: paired(rows, c) for c in others}
    report = {
        "task": a.task,
        "grow": grow,
        "preset": preset,
        "data": None if image else a.data or a.corpus,
        "score": "val error (1 − accuracy)" if image else "val bpc",
        "lr_grid": grid,
        "tune_seeds": a.seeds[: a.tune_seeds],
        "lr_scores": {r: {str(k): v for k, v in s.items()} for r, s in scores.items()},
        "lr": chosen,
        "rows": {r: {str(s): v for s, v in by.items()} for r, by in rows.items()},
        "grown_minus": figures,
        "machine": machine(),
    }
    (a.out / "controls.json").write_text(json.dumps(report, indent=2) + "\n")
    score = "best val error" if image else "best val bpc"
    print(f"| row | lr | seed | {score} | test acc | train FLOPs | params | edits | wall s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r, by in rows.items():
        for s, v in by.items():
            test = "–" if v["test_acc"] is None else f"{v['test_acc']:.4f}"
            print(
                f"| {r} | {chosen[r]:g} | {s} | {v['best_score']:.4f} | {test} |"
                f" {v['train_flops']:.3e} | {v['params']} | {v['edits']} | {v['wall_s']:.0f} |"
            )
    for c, f in figures.items():
        diffs = " / ".join(f"{d:+.4f}" for d in f["diffs"])
        verdict = "beyond 2 s.e." if f["beyond_2se"] else "within 2 s.e."
        print(
            f"grown − {c} at equal FLOPs: {f['mean']:+.4f} ± {f['se']:.4f} ({diffs}; {verdict});"
            f" at each run's end {f['mean_at_end']:+.4f}"
        )
        if "test_acc_mean" in f:
            tests = " / ".join(f"{d:+.4f}" for d in f["test_acc_diffs"])
            print(f"  test accuracy, grown − {c}: {f['test_acc_mean']:+.4f} ± "
                  f"{f['test_acc_se']:.4f} ({tests})")  # fmt: skip


if __name__ == "__main__":
    main()
