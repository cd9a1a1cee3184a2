"""Cell and wiring designs trained through the project's own Trainer on the same batches.

Each variant is built at about the same parameter count (``--params``), trained with the
small preset's loop (600 steps, batch 16 × 64, AdamW, warm-up + cosine, aux and gate
terms as for a morpho network) on ``morpho.sims.lang``, one run per (variant, lr, seed),
and printed / appended as one JSON line (params, best and final val bpc, tokens/s).

    python benchmarks/cell_design.py --variants wide,seed --lrs 3e-3,6e-3 --seeds 0,1
    python benchmarks/cell_design.py --variants wide --corpus stdlib --lrs 6e-3
    python benchmarks/cell_design.py --throughput wide,seed     # tokens/s, side by side

Variants: ``seed`` (the default 2-4-4-2 thermodynamic tissue, d_cell 32), ``gru`` (the static
GRU baseline sized to ``--params``) and ``wide*`` (the ``"wide"`` cell type of
:mod:`morpho.cells_wide`, see ``VARIANTS``).
Results and commands are recorded in ``benchmarks/cell_design.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace
from typing import Any

import torch

from morpho.config import RunConfig
from morpho.network import Network, NetworkConfig
from morpho.sims.baselines import build_baseline
from morpho.sims.lang import LangTask
from morpho.trainer import Callback, Model, Trainer

# wide variants: overrides of the wide cell's defaults (D 96, 1-1-1-1, selective recurrence,
# 4-tap conv, output gate, attention, demon gate, MLP ×2); d_cell is then sized to --params.
# "wide*" names without "og" run without the output gate (the first design measured).
PLAIN = {"out_gate": False}
VARIANTS: dict[str, dict[str, Any]] = {
    "wide": PLAIN,
    "wide-lti": {**PLAIN, "recurrence": "lti"},
    "wide-noattn": {**PLAIN, "attention": False},
    "wide-nogate": {**PLAIN, "gate": False},
    "wide-noconv": {**PLAIN, "conv_taps": 0},
    "wide-nomlp": {**PLAIN, "mlp_ratio": 0},
    "wide-D64": {**PLAIN, "d_stream": 64},
    "wide-D128": {**PLAIN, "d_stream": 128},
    "wide-6": {**PLAIN, "level_sizes": (1, 1, 1, 1, 1, 1)},
    "wide-2222": {**PLAIN, "level_sizes": (2, 2, 2, 2)},
    "wide-mlp3": {**PLAIN, "mlp_ratio": 3},
    "wide-mlp4": {**PLAIN, "mlp_ratio": 4},
    "wide-og": {},
    "wide-og-mlp3": {"mlp_ratio": 3},
    "wide-og-noattn": {"attention": False},
    "wide-og-nogate": {"gate": False},
    "wide-og-lti": {"recurrence": "lti"},
    "wide-og-noconv": {"conv_taps": 0},
    "wide-og-2222": {"level_sizes": (2, 2, 2, 2)},
}


def build(name: str, vocab_size: int, seed: int, target: int) -> Network | Model:
    """The model of variant ``name`` with about ``target`` parameters."""
    if name == "seed":
        return Network(NetworkConfig(vocab_size=vocab_size, seed=seed))
    if name == "gru":
        return build_baseline("gru", vocab_size, target, seed=seed)
    if name not in VARIANTS:
        choices = ", ".join(["seed", "gru", *VARIANTS])
        raise SystemExit(f"unknown variant {name!r}; expected one of: {choices}")
    return Network(sized(wide_config(vocab_size, seed, VARIANTS[name]), target))


NETWORK_KEYS = ("d_stream", "level_sizes", "mlp_ratio")  # [network] keys; the rest: options


def wide_config(vocab_size: int, seed: int, overrides: dict[str, Any]) -> NetworkConfig:
    """The network config of a wide variant (D 96, 1-1-1-1 unless overridden)."""
    net: dict[str, Any] = {"d_stream": 96, "level_sizes": (1, 1, 1, 1)}
    net.update({k: v for k, v in overrides.items() if k in NETWORK_KEYS})
    options = {k: v for k, v in overrides.items() if k not in NETWORK_KEYS}
    return NetworkConfig(
        vocab_size=vocab_size, cell_type="wide", cell_options=options, seed=seed, **net
    )


def sized(cfg: NetworkConfig, target: int) -> NetworkConfig:
    """``cfg`` with the largest ``d_cell`` (a multiple of ``n_heads``) within ``target``."""
    best = replace(cfg, d_cell=cfg.n_heads)
    for d in range(cfg.n_heads, 4 * cfg.width, cfg.n_heads):
        trial = replace(cfg, d_cell=d)
        if Network(trial).n_params() > target:
            break
        best = trial
    return best


def train_one(name: str, lr: float, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """One run through the Trainer; returns its JSON record."""
    torch.manual_seed(seed)
    task = LangTask(corpus=args.corpus)
    preset = RunConfig.preset(args.preset).train
    cfg = replace(preset, lr=lr, seed=seed, steps=args.steps or preset.steps)
    model = build(name, task.vocab_size, seed, args.params)
    t0 = time.perf_counter()
    trainer = Trainer(model, task, cfg)
    curve: list[tuple[int, float]] = []

    class Curve(Callback):  # the eval curve, for the record
        def on_eval(self, tr: Trainer, step: int, record: dict[str, Any]) -> None:
            curve.append((step, round(record["val_bpc"], 4)))

    trainer.callbacks.append(Curve())
    summary = trainer.fit()
    curve.append((summary["steps"], round(summary["val_bpc"], 4)))
    record = {
        "variant": name,
        "corpus": args.corpus,
        "lr": lr,
        "seed": seed,
        "steps": cfg.steps,
        "params": model.n_params(),
        "d_cell": getattr(getattr(model, "cfg", None), "d_cell", None),
        "best_val_bpc": round(summary["best_val_bpc"], 4),
        "val_bpc": round(summary["val_bpc"], 4),
        "tokens_per_s": round(summary["tokens_per_s"]),
        "flops_per_token": round(model.flops_per_token(cfg.seq_len)),
        "wall_s": round(time.perf_counter() - t0, 1),
        "curve": curve,
    }
    return record


def throughput(names: list[str], args: argparse.Namespace) -> None:
    """Training tokens/s of each variant, one step of each in turn on the same batches."""
    task = LangTask(corpus=args.corpus)
    cfg = replace(RunConfig.preset(args.preset).train, lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    models = [build(n, task.vocab_size, 0, args.params) for n in names]
    trainers = [Trainer(m, task, cfg) for m in models]  # each step: the run's objective
    times: list[list[float]] = [[] for _ in models]
    for step in range(args.timing_steps):
        x, y = task.batch("train", cfg.batch_size, cfg.seq_len, gen)
        for i, tr in enumerate(trainers):
            t0 = time.perf_counter()
            loss, _, _ = tr.loss(x, y)
            tr.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            tr.optimizer.step()
            if step >= 3:  # warm-up steps left out
                times[i].append(time.perf_counter() - t0)
    tokens = cfg.batch_size * cfg.seq_len
    for name, m, ts in zip(names, models, times, strict=True):
        rec = {
            "variant": name,
            "params": m.n_params(),
            "tokens_per_s": round(tokens / statistics.median(ts)),
            "flops_per_token": round(m.flops_per_token(cfg.seq_len)),
            "threads": torch.get_num_threads(),
        }
        print(json.dumps(rec), flush=True)


def table(path: str) -> None:
    """A markdown table of the JSON lines in ``path``: one row per (corpus, variant, lr),
    best val bpc per seed and their mean."""
    rows: dict[tuple[str, str, float], dict[int, dict[str, Any]]] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            rows.setdefault((r["corpus"], r["variant"], r["lr"]), {})[r["seed"]] = r
    print("| corpus | variant | params | d_cell | lr | best val bpc per seed | mean |")
    print("|---|---|---:|---:|---:|---|---:|")
    for (corpus, name, lr), by_seed in sorted(rows.items()):
        first = next(iter(by_seed.values()))
        bpcs = [by_seed[s]["best_val_bpc"] for s in sorted(by_seed)]
        per_seed = " / ".join(f"s{s} {by_seed[s]['best_val_bpc']:.4f}" for s in sorted(by_seed))
        print(
            f"| {corpus} | {name} | {first['params']:,} | {first['d_cell'] or ''} | {lr:g} "
            f"| {per_seed} | {statistics.mean(bpcs):.4f} |"
        )


def paired(path: str, spec: str, corpus: str) -> None:
    """Per-seed differences ``A − B`` of best val bpc; ``spec`` is ``A:lr,B:lr``."""
    (a, lr_a), (b, lr_b) = (
        (name, float(lr)) for name, lr in (part.split(":") for part in spec.split(","))
    )
    got: dict[tuple[str, float], dict[int, float]] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if r["corpus"] == corpus:
                got.setdefault((r["variant"], r["lr"]), {})[r["seed"]] = r["best_val_bpc"]
    xs, ys = got.get((a, lr_a), {}), got.get((b, lr_b), {})
    seeds = sorted(set(xs) & set(ys))
    if not seeds:
        raise SystemExit(f"no common seeds of {a} at lr {lr_a:g} and {b} at lr {lr_b:g}")
    diffs = [xs[s] - ys[s] for s in seeds]
    per_seed = ", ".join(f"s{s} {d:+.4f}" for s, d in zip(seeds, diffs, strict=True))
    print(
        f"| {a} @ {lr_a:g} − {b} @ {lr_b:g} | {per_seed} | {statistics.mean(diffs):+.4f} "
        f"| {sum(d < 0 for d in diffs)}/{len(diffs)} |"
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", default="wide", help="comma-separated variant names")
    p.add_argument("--lrs", default="3e-3", help="comma-separated peak learning rates")
    p.add_argument("--seeds", default="0", help="comma-separated seeds")
    p.add_argument("--corpus", default="pydoc", choices=("pydoc", "stdlib"))
    p.add_argument("--preset", default="small")
    p.add_argument("--steps", type=int, default=0, help="override the preset's steps")
    p.add_argument("--params", type=int, default=130_000, help="target parameter count")
    p.add_argument("--out", default="", help="append JSON lines here too")
    p.add_argument("--throughput", default="", help="variants to time instead of training")
    p.add_argument("--timing-steps", type=int, default=30)
    p.add_argument("--table", default="", help="print a markdown table of a JSON-lines file")
    p.add_argument("--paired", default="", help="with --table: A:lr,B:lr per-seed A − B")
    args = p.parse_args(argv)
    if args.table and args.paired:
        paired(args.table, args.paired, args.corpus)
        return
    if args.table:
        table(args.table)
        return
    if args.throughput:
        throughput(args.throughput.split(","), args)
        return
    for name in args.variants.split(","):
        for lr in (float(v) for v in args.lrs.split(",")):
            for seed in (int(v) for v in args.seeds.split(",")):
                rec = train_one(name, lr, seed, args)
                line = json.dumps(rec)
                print(line, flush=True)
                if args.out:
                    with open(args.out, "a", encoding="utf-8") as f:
                        f.write(line + "\n")


if __name__ == "__main__":
    main()
