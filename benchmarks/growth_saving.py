"""Does growing save training compute? Grown morpho and a stacked Transformer against scratch.

The field's protocol (Du et al. 2024; Kaddour et al. 2023): every run is charged all of its
dense training FLOPs (:class:`~morpho.flops.FlopCounter`: for a grown run every stage before
its final size and every forward its scheduler ran), and a grown model is compared with the
final-size model trained from scratch on the same batches. For each seed this trains:

* ``grown``        — morpho from its seed tissue with ``--grow`` config (e.g. width growth);
* ``scratch``      — a fresh network at ``grown``'s final topology and width, growth off,
  the same steps (the target: its best val bpc);
* ``scratch-plain`` — the same without what the cell type records only because the network
  was edited (a widened wide cell's norms keep averaging over the width before widening:
  ``norm_width``); the stronger of the two scratch rows is the target;
* ``scratch@flops``— ``scratch`` with its steps (and so its schedule) cut to ``grown``'s FLOPs;
* ``transformer`` / ``transformer-stack`` (``--stack``) — the static Transformer at the final
  parameter count, and the one grown by G_stack depth stacking at a quarter of the steps;
* ``gru`` (when ``--lr gru=…`` is given) — a GRU at the final parameter count;
* ``random`` / ``schedule`` (when ``--rows`` names them) — blind controls of ``grown``: its
  recorded events replayed with ``growth.control`` (:mod:`morpho.growth.control`) on drawn
  cells, at its steps (random) or evenly spaced over the growth window (schedule);
* ``envelope-0.25x`` / ``envelope-0.5x`` / ``envelope-2x`` (when ``--rows`` names them) —
  the final network at that multiple of its parameters (its width scaled, whole heads),
  from scratch with the static budget; with ``scratch`` (×1) they are the fixed-size
  envelope: at each FLOP count the lowest val bpc any of them reached by then.

Every row also logs ``wall`` lines (seconds since its start, at each evaluation), so the
wall-time saving comes from the same script, side by side.

and reports, with per-seed paired differences (:mod:`morpho.sims.saving`): the saving
``1 − F_grown / F_scratch`` in FLOPs to the scratch run's best val bpc, the end-of-run gap,
the gap to ``scratch@flops``, and the stacked Transformer's saving against its own scratch.
Each row's learning rate comes from ``--lr ROW=VALUE``, chosen by
``benchmarks/lr_sweep.py`` (seed 0, best val bpc) and recorded in the output.

    python benchmarks/growth_saving.py --preset wide --grow benchmarks/grow_depth.toml \\
        --corpus pydoc --seeds 0 1 2 --stack --out runs/saving-pydoc

Writes ``OUT/<seed>/<row>/`` run directories, ``OUT/<seed>/bench.json`` (so
``morpho plot OUT/<seed>`` draws the rows' val bpc against training FLOPs) and
``OUT/saving.json``; prints a table.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from morpho.checkpoint import load_network
from morpho.config import RunConfig
from morpho.files import load_toml
from morpho.grow import build_task
from morpho.network import Network
from morpho.rundir import read_jsonl
from morpho.sims.baselines import StackAt, build_baseline, build_stack_peer
from morpho.sims.bench import bench_config, machine, morpho_row, train_row, with_eval_points
from morpho.sims.saving import Curve, loss_at, paired, read_curve, saving
from morpho.trainer import Callback, Trainer

ROWS = (
    "grown",
    "scratch",
    "scratch-plain",
    "scratch@flops",
    "transformer",
    "transformer-stack",
    "gru",
    "random",
    "schedule",
    "envelope-0.25x",
    "envelope-0.5x",
    "envelope-2x",
)
DEFAULT_ROWS = ROWS[:7]
CONTROLS = ("random", "schedule")
ENVELOPE = {"envelope-0.25x": 0.25, "envelope-0.5x": 0.5, "envelope-2x": 2.0}
QUARTER = 0.25  # the envelope gap is also reported after this share of the grown run's FLOPs
# what a cell type records only because a network was edited (a widened wide cell's norms
# average over its width before widening): ``scratch-plain`` is the final network without it
EDIT_ONLY_OPTIONS = ("norm_width",)
STACK_AT = 0.25


def row_cfg(cfg: RunConfig, lr: float | None, **train: Any) -> RunConfig:
    over: dict[str, Any] = dict(train)
    if lr is not None:
        over["lr"] = lr
    return cfg.merged({"train": over}) if over else cfg


class WallClock(Callback):
    """Logs ``{"kind": "wall", "step", "seconds", "val_bpc"}`` at every evaluation."""

    def on_train_start(self, trainer: Trainer) -> None:
        self.t0 = time.perf_counter()

    def on_eval(self, trainer: Trainer, step: int, record: dict[str, Any]) -> None:
        if trainer.run is not None and record.get("val_bpc") is not None:
            seconds = time.perf_counter() - self.t0
            line = {"kind": "wall", "step": step, "seconds": seconds, "val_bpc": record["val_bpc"]}
            trainer.run.log_metrics(line)

    def on_train_end(self, trainer: Trainer, summary: dict[str, Any]) -> None:
        last = trainer.state.last_eval  # the final evaluation, as the FLOPs lines log it
        if last:
            self.on_eval(trainer, trainer.step, last)


def read_wall(run: Path) -> Curve:
    """Val bpc against wall seconds (the ``wall`` lines)."""
    lines = [r for r in read_jsonl(run / "metrics.jsonl") if r.get("kind") == "wall"]
    return Curve(tuple(r["seconds"] for r in lines), tuple(r["val_bpc"] for r in lines))


def scaled_width(cfg: Any, share: float, params_of: Any) -> Any:
    """``cfg`` with ``d_cell`` (whole heads) whose parameter count is nearest, in ratio, to
    ``share`` of ``cfg``'s."""
    head = cfg.d_cell // cfg.n_heads
    target = share * params_of(cfg)
    best = None
    for heads in range(1, 4 * cfg.n_heads + 1):
        c = replace(cfg, d_cell=heads * head, n_heads=heads)
        gap = abs(math.log(params_of(c) / target))
        if best is None or gap < best[0]:
            best = (gap, c)
    assert best is not None
    return best[1]


def run_seed(
    cfgs: tuple[RunConfig, RunConfig],
    out: Path,
    seed: int,
    lrs: dict[str, float],
    stack: bool,
    rows: tuple[str, ...],
    reuse: bool = False,
) -> dict[str, Any]:
    """Every row for one seed; returns ``{row: bench row}`` (curves stay in the run dirs).

    ``cfgs``: the grown run's config and the static rows' (the budget: steps, schedule)."""
    seeded = {"train": {"seed": seed}, "network": {"seed": seed}}  # data order and init
    grow_cfg, cfg = (c.merged(seeded) for c in cfgs)
    task = build_task(cfg)
    out.mkdir(parents=True, exist_ok=True)
    done: dict[str, Any] = {}
    clock = [WallClock()]
    final_pt = out / "grown" / "checkpoints" / "final.pt"
    if reuse and final_pt.exists():  # rows beside a grown run trained elsewhere
        params = load_network(final_pt)[0].n_params()
        grown: dict[str, Any] = {"name": "grown", "params": params, "reused": True}
    else:
        grown = morpho_row("grown", row_cfg(grow_cfg, lrs.get("grown")), out, True, clock)
    done["grown"] = grown
    trace = str(out / "grown" / "events.jsonl")
    for name in (r for r in CONTROLS if r in rows):  # the same events, read from no signal
        ctl = grow_cfg.merged({"growth": {"control": name, "control_from": trace}})
        done[name] = morpho_row(name, row_cfg(ctl, lrs.get(name, lrs.get("grown"))), out, True,
                                 [WallClock()])  # fmt: skip
    final, _ = load_network(out / "grown" / "checkpoints" / "final.pt")
    fixed = cfg.merged({"growth": {"enabled": False}})

    plain = replace(
        final.cfg,
        cell_options={
            k: v for k, v in final.cfg.cell_options.items() if k not in EDIT_ONLY_OPTIONS
        },
    )

    def params_of(net_cfg: Any) -> int:
        return Network(net_cfg, tissue=final.tissue.clone()).n_params()

    def scratch(name: str, steps: int, net_cfg: Any = None) -> dict[str, Any]:
        torch.manual_seed(seed)
        net_cfg = net_cfg or (plain if name == "scratch-plain" else final.cfg)
        net = Network(net_cfg, tissue=final.tissue.clone())
        c = with_eval_points(row_cfg(fixed, lrs.get(name, lrs.get("scratch")), steps=steps), 24)
        return train_row(name, net, c, task, out / name, True, [WallClock()])

    if "scratch" in rows or "scratch@flops" in rows:
        done["scratch"] = scratch("scratch", cfg.train.steps)
    if "scratch-plain" in rows and plain != final.cfg:
        done["scratch-plain"] = scratch("scratch-plain", cfg.train.steps)
    if "scratch@flops" in rows:
        ratio = grown["dense_train_flops"] / done["scratch"]["dense_train_flops"]
        done["scratch@flops"] = scratch("scratch@flops", max(1, round(cfg.train.steps * ratio)))
    for name, share in ENVELOPE.items():
        if name in rows:
            done[name] = scratch(name, cfg.train.steps, scaled_width(plain, share, params_of))
            done[name]["share"] = done[name]["params"] / params_of(plain)
    if stack:
        params = grown["params"]
        model = build_baseline("transformer", task.vocab_size, params, seed=seed)
        lr_t = lrs.get("transformer")
        done["transformer"] = train_row(
            "transformer", model, row_cfg(cfg, lr_t), task, out / "transformer", True
        )
        peer = build_stack_peer(task.vocab_size, params, seed=seed)
        at = StackAt(max(1, round(STACK_AT * cfg.train.steps)))
        lr_s = lrs.get("transformer-stack", lr_t)
        done["transformer-stack"] = train_row(
            "transformer-stack",
            peer,
            row_cfg(cfg, lr_s),
            task,
            out / "transformer-stack",
            True,
            [at],
        )
    if "gru" in rows and lrs.get("gru") is not None:  # the other static peer, when given a rate
        model = build_baseline("gru", task.vocab_size, grown["params"], seed=seed)
        done["gru"] = train_row("gru", model, row_cfg(cfg, lrs["gru"]), task, out / "gru", True)
    write_bench(out, done, cfg)
    return done


def write_bench(out: Path, rows: dict[str, Any], cfg: RunConfig) -> None:
    """``out/bench.json`` naming the rows, so ``morpho plot OUT/<seed>`` draws their curves."""
    named = [{**r, "name": name} for name, r in rows.items()]
    text = json.dumps({"rows": named, "config": cfg.to_dict(), "machine": machine()}, indent=2)
    (out / "bench.json").write_text(text + "\n")


def figures(out: Path, seeds: list[int], stack: bool) -> dict[str, Any]:
    """Savings and gaps per seed, from the run directories' curves."""
    per_seed: list[dict[str, Any]] = []
    for s in seeds:
        d = out / str(s)
        g, sc = read_curve(d / "grown"), read_curve(d / "scratch")
        rec: dict[str, Any] = {"seed": s}
        if (d / "scratch-plain" / "metrics.jsonl").exists():  # the stronger one is the target
            plain = read_curve(d / "scratch-plain")
            rec |= {"scratch_as_grown_best": sc.best, "scratch_plain_best": plain.best}
            rec["saving_vs_as_grown"] = saving(g, sc)
            sc = min(sc, plain, key=lambda c: c.best)
        rec |= {
            "saving": saving(g, sc),
            "grown_best": g.best,
            "scratch_best": sc.best,
            "grown_flops": g.total,
            "scratch_flops": sc.total,
            "scratch_at_grown_flops": loss_at(sc, g.total),
        }
        if (d / "scratch@flops" / "metrics.jsonl").exists():
            rec["scratch@flops_best"] = read_curve(d / "scratch@flops").best
        if stack:
            t, st = read_curve(d / "transformer"), read_curve(d / "transformer-stack")
            rec |= {
                "stack_saving": saving(st, t),
                "transformer_best": t.best,
                "stack_best": st.best,
                "transformer_flops": t.total,
            }
        if (d / "gru" / "metrics.jsonl").exists():
            rec["gru_best"] = read_curve(d / "gru").best
        rec |= control_figures(d, g) | envelope_figures(d, g, sc) | wall_figures(d, sc.best)
        per_seed.append(rec)
    col = lambda k: [r[k] for r in per_seed]  # noqa: E731
    summary: dict[str, Any] = {
        "grown - scratch (best bpc)": str(paired(col("grown_best"), col("scratch_best"))),
        "saving": [r["saving"] for r in per_seed],
    }
    if all("scratch@flops_best" in r for r in per_seed):
        summary["grown - scratch@flops (best bpc)"] = str(
            paired(col("grown_best"), col("scratch@flops_best"))
        )
    for name in CONTROLS:
        if all(f"grown - {name} @ equal flops" in r for r in per_seed):
            diffs = paired(col(f"grown - {name} @ equal flops"), [0.0] * len(per_seed))
            summary[f"grown - {name} (bpc at equal FLOPs)"] = f"{diffs} ± {sem(diffs):.3f} s.e."
    if all("envelope_gap_quarter" in r for r in per_seed):
        summary["envelope gap after a quarter"] = col("envelope_gap_quarter")
        summary["envelope gap at the end"] = col("envelope_gap_end")
    if all("wall_saving" in r for r in per_seed):
        summary["wall_saving"] = col("wall_saving")
    if stack:
        summary["stack_saving"] = col("stack_saving")
        summary["grown - transformer (best bpc)"] = str(
            paired(col("grown_best"), col("transformer_best"))
        )
    return {"per_seed": per_seed, "summary": summary}


def sem(p: Any) -> float:
    """Standard error of the mean of paired differences."""
    return p.std / math.sqrt(len(p.values)) if p.values else math.nan


def control_figures(d: Path, g: Curve) -> dict[str, Any]:
    """Grown − each control at equal FLOPs: best-so-far val bpc at the smaller total."""
    rec: dict[str, Any] = {}
    for name in CONTROLS:
        if (d / name / "metrics.jsonl").exists():
            c = read_curve(d / name)
            at = min(g.total, c.total)
            rec[f"{name}_best"], rec[f"{name}_flops"] = c.best, c.total
            rec[f"grown - {name} @ equal flops"] = loss_at(g, at) - loss_at(c, at)
    return rec


def envelope(curves: list[Curve], flops: float) -> float:
    """The lowest val bpc any fixed size reached at no more than ``flops``."""
    return min(loss_at(c, flops) for c in curves)


def envelope_figures(d: Path, g: Curve, scratch: Curve) -> dict[str, Any]:
    """The grown run's gap to the fixed-size envelope at every evaluation, after a quarter
    of its FLOPs and at its end (positive: some fixed size was better by then)."""
    sizes = [read_curve(d / n) for n in ENVELOPE if (d / n / "metrics.jsonl").exists()]
    if not sizes:
        return {}
    curves = [scratch, *sizes]
    gaps = [(f, loss_at(g, f) - envelope(curves, f)) for f in g.flops]
    quarter = QUARTER * g.total
    return {
        "envelope_gap_quarter": loss_at(g, quarter) - envelope(curves, quarter),
        "envelope_gap_end": gaps[-1][1],
        "envelope_gaps": gaps,
        "envelope_best": {n: read_curve(d / n).best for n in ENVELOPE if (d / n).exists()},
    }


def wall_figures(d: Path, target: float) -> dict[str, Any]:
    """``1 − seconds_grown / seconds_scratch`` to the target, from the ``wall`` lines."""
    try:
        g, sc = read_wall(d / "grown"), read_wall(d / "scratch")
    except (ValueError, FileNotFoundError):
        return {}
    target = max(target, sc.best)  # the evaluations the wall lines saw
    return {
        "wall_saving": saving(g, sc, target),
        "grown_seconds": g.total,
        "scratch_seconds": sc.total,
    }


def merge(seed_dir: Path, others: list[Path]) -> list[dict[str, Any]]:
    """The rows of ``seed_dir/bench.json`` and of each other output's (rows trained in
    parallel processes), the others' run directories linked in; rewrites the bench.json."""
    rows = {r["name"]: r for r in json.loads((seed_dir / "bench.json").read_text())["rows"]}
    for other in (o for o in others if (o / "bench.json").exists()):
        for r in json.loads((other / "bench.json").read_text())["rows"]:
            if r["name"] in rows or r.get("reused"):
                continue
            link = seed_dir / r["name"]
            if not link.exists():
                link.symlink_to((other / r["name"]).resolve())
            rows[r["name"]] = r
    bench = json.loads((seed_dir / "bench.json").read_text())
    bench["rows"] = list(rows.values())
    (seed_dir / "bench.json").write_text(json.dumps(bench, indent=2) + "\n")
    return bench["rows"]


def parse_pairs(items: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items:
        name, _, value = item.partition("=")
        if name not in ROWS or not value:
            raise SystemExit(
                f"error: expected ROW=VALUE with ROW one of {', '.join(ROWS)}; got {item!r}"
            )
        out[name] = float(value)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--preset", default="wide")
    ap.add_argument("--grow", type=Path, help="TOML overrides of the preset for the grown run")
    ap.add_argument("--corpus", default="pydoc")
    ap.add_argument("--data", help="a UTF-8 text file instead of --corpus")
    ap.add_argument("--steps", type=int, help="the static rows' budget (default: the preset's)")
    ap.add_argument("--grown-steps", type=int, help="the grown run's steps (default: --steps)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--lr", nargs="*", default=[], help="ROW=VALUE learning rates")
    ap.add_argument(
        "--stack", action="store_true", help="also the Transformer and its G_stack peer"
    )
    ap.add_argument("--no-scratch-at-flops", action="store_true")
    ap.add_argument(
        "--rows", nargs="+", choices=ROWS, help="rows to train (default: the first seven)"
    )
    ap.add_argument("--report", action="store_true", help="only read OUT's runs and report")
    ap.add_argument(
        "--merge",
        nargs="*",
        type=Path,
        default=[],
        help="with --report: rows of these outputs (same seeds) linked into OUT first",
    )
    ap.add_argument(
        "--reuse-grown", action="store_true", help="keep OUT/<seed>/grown when it has finished"
    )
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    cfg, _ = bench_config(
        a.preset, None, {"task_options": {"data": a.data} if a.data else {"corpus": a.corpus}}
    )
    if a.steps:
        cfg = cfg.merged({"train": {"steps": a.steps}})
    grow_cfg = cfg.merged(load_toml(a.grow)) if a.grow else cfg
    if a.grown_steps:
        grow_cfg = grow_cfg.merged({"train": {"steps": a.grown_steps}})
    cfgs = (with_eval_points(grow_cfg, 24), with_eval_points(cfg, 24))
    lrs = parse_pairs(a.lr)
    rows = tuple(a.rows or DEFAULT_ROWS)
    rows = tuple(r for r in rows if not (a.no_scratch_at_flops and r == "scratch@flops"))
    rows_by_seed: dict[int, Any]
    if a.report:
        rows_by_seed = {s: merge(a.out / str(s), [m / str(s) for m in a.merge]) for s in a.seeds}
    else:
        rows_by_seed = {
            s: run_seed(cfgs, a.out / str(s), s, lrs, a.stack, rows, a.reuse_grown) for s in a.seeds
        }
    result = {
        "config": cfgs[1].to_dict(),
        "grown_config": cfgs[0].to_dict(),
        "grow_overrides": load_toml(a.grow) if a.grow else {},
        "lrs": lrs,
        "rows": {str(s): r for s, r in rows_by_seed.items()},
        **figures(a.out, a.seeds, a.stack),
        "machine": machine(),
    }
    name = "saving.json" if len(a.seeds) > 1 else f"saving-{'-'.join(map(str, a.seeds))}.json"
    (a.out / name).write_text(json.dumps(result, indent=2, default=str) + "\n")
    for rec in result["per_seed"]:
        fmt = lambda v: "never" if v is None else f"{v:+.1%}"  # noqa: E731
        line = (
            f"seed {rec['seed']}: saving {fmt(rec['saving'])}  grown {rec['grown_best']:.3f}"
            f" ({rec['grown_flops']:.2e} FLOPs)  scratch {rec['scratch_best']:.3f}"
            f" ({rec['scratch_flops']:.2e})"
        )
        if "scratch@flops_best" in rec:
            line += f"  scratch@flops {rec['scratch@flops_best']:.3f}"
        if "stack_saving" in rec:
            line += (
                f"  | transformer {rec['transformer_best']:.3f} stack {rec['stack_best']:.3f}"
                f" stack saving {fmt(rec['stack_saving'])}"
            )
        print(line)
    for k, v in result["summary"].items():
        print(
            f"{k}: {[None if x is None else round(x, 3) for x in v] if isinstance(v, list) else v}"
        )


if __name__ == "__main__":
    main()
