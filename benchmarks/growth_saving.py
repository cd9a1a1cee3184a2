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
* ``gru`` (when ``--lr gru=…`` is given) — a GRU at the final parameter count.

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
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from morpho.checkpoint import load_network
from morpho.config import RunConfig
from morpho.files import load_toml
from morpho.grow import build_task
from morpho.network import Network
from morpho.sims.baselines import StackAt, build_baseline, build_stack_peer
from morpho.sims.bench import bench_config, machine, morpho_row, train_row, with_eval_points
from morpho.sims.saving import loss_at, paired, read_curve, saving

ROWS = (
    "grown",
    "scratch",
    "scratch-plain",
    "scratch@flops",
    "transformer",
    "transformer-stack",
    "gru",
)
# what a cell type records only because a network was edited (a widened wide cell's norms
# average over its width before widening): ``scratch-plain`` is the final network without it
EDIT_ONLY_OPTIONS = ("norm_width",)
STACK_AT = 0.25


def row_cfg(cfg: RunConfig, lr: float | None, **train: Any) -> RunConfig:
    over: dict[str, Any] = dict(train)
    if lr is not None:
        over["lr"] = lr
    return cfg.merged({"train": over}) if over else cfg


def run_seed(
    cfgs: tuple[RunConfig, RunConfig],
    out: Path,
    seed: int,
    lrs: dict[str, float],
    stack: bool,
    rows: tuple[str, ...],
) -> dict[str, Any]:
    """Every row for one seed; returns ``{row: bench row}`` (curves stay in the run dirs).

    ``cfgs``: the grown run's config and the static rows' (the budget: steps, schedule)."""
    seeded = {"train": {"seed": seed}, "network": {"seed": seed}}  # data order and init
    grow_cfg, cfg = (c.merged(seeded) for c in cfgs)
    task = build_task(cfg)
    out.mkdir(parents=True, exist_ok=True)
    done: dict[str, Any] = {}
    grown = morpho_row("grown", row_cfg(grow_cfg, lrs.get("grown")), out, True)
    done["grown"] = grown
    final, _ = load_network(out / "grown" / "checkpoints" / "final.pt")
    fixed = cfg.merged({"growth": {"enabled": False}})

    plain = replace(
        final.cfg,
        cell_options={
            k: v for k, v in final.cfg.cell_options.items() if k not in EDIT_ONLY_OPTIONS
        },
    )

    def scratch(name: str, steps: int) -> dict[str, Any]:
        torch.manual_seed(seed)
        net_cfg = plain if name == "scratch-plain" else final.cfg
        net = Network(net_cfg, tissue=final.tissue.clone())
        c = with_eval_points(row_cfg(fixed, lrs.get(name, lrs.get("scratch")), steps=steps), 24)
        return train_row(name, net, c, task, out / name, True)

    if "scratch" in rows or "scratch@flops" in rows:
        done["scratch"] = scratch("scratch", cfg.train.steps)
    if "scratch-plain" in rows and plain != final.cfg:
        done["scratch-plain"] = scratch("scratch-plain", cfg.train.steps)
    if "scratch@flops" in rows:
        ratio = grown["dense_train_flops"] / done["scratch"]["dense_train_flops"]
        done["scratch@flops"] = scratch("scratch@flops", max(1, round(cfg.train.steps * ratio)))
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
    if stack:
        summary["stack_saving"] = col("stack_saving")
        summary["grown - transformer (best bpc)"] = str(
            paired(col("grown_best"), col("transformer_best"))
        )
    return {"per_seed": per_seed, "summary": summary}


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
    ap.add_argument("--steps", type=int, help="the static rows' budget (default: the preset's)")
    ap.add_argument("--grown-steps", type=int, help="the grown run's steps (default: --steps)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--lr", nargs="*", default=[], help="ROW=VALUE learning rates")
    ap.add_argument(
        "--stack", action="store_true", help="also the Transformer and its G_stack peer"
    )
    ap.add_argument("--no-scratch-at-flops", action="store_true")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    cfg, _ = bench_config(a.preset, None, {"task_options": {"corpus": a.corpus}})
    if a.steps:
        cfg = cfg.merged({"train": {"steps": a.steps}})
    grow_cfg = cfg.merged(load_toml(a.grow)) if a.grow else cfg
    if a.grown_steps:
        grow_cfg = grow_cfg.merged({"train": {"steps": a.grown_steps}})
    cfgs = (with_eval_points(grow_cfg, 24), with_eval_points(cfg, 24))
    lrs = parse_pairs(a.lr)
    rows = tuple(r for r in ROWS if not (a.no_scratch_at_flops and r == "scratch@flops"))
    rows_by_seed = {s: run_seed(cfgs, a.out / str(s), s, lrs, a.stack, rows) for s in a.seeds}
    result = {
        "config": cfgs[1].to_dict(),
        "grown_config": cfgs[0].to_dict(),
        "grow_overrides": load_toml(a.grow) if a.grow else {},
        "lrs": lrs,
        "rows": {str(s): r for s, r in rows_by_seed.items()},
        **figures(a.out, a.seeds, a.stack),
        "machine": machine(),
    }
    (a.out / "saving.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
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
