"""Summarise image benches (``morpho bench --task digits|mnist``) over seeds into markdown.

    python benchmarks/images_table.py runs/bench-digits-s0 runs/bench-digits-s1 ...

Reads each bench's ``bench.json`` (rows and ``reach``; a bench still running: the
``summary.json`` of the rows it finished, ``reach`` recomputed from their metrics) and
prints: one table of the rows (parameters, validation and test accuracy per seed, training
FLOPs), then the three goals per seed — FLOPs to 99 % of the reference's final validation
accuracy (morpho against ``morpho-fixed``, GroMo against ``mlp``), final test accuracy at
equal parameters, and morpho carrying its optimizer state against ``morpho-reset``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from statistics import mean
from typing import Any

import tomllib

ORDER = (
    "morpho",
    "morpho-fixed",
    "morpho-no-mitosis",
    "morpho-no-apoptosis",
    "morpho-no-dendrite",
    "morpho-no-prune",
    "morpho-reset",
    "mlp",
    "gromo",
)


def load(paths: list[str]) -> list[dict[str, Any]]:
    benches = []
    for p in paths:
        path = Path(p)
        if (path / "bench.json").is_file():
            bench = json.loads((path / "bench.json").read_text())
        else:
            bench = partial_bench(path)
        benches.append({**bench, "path": path})
    return benches


def partial_bench(path: Path) -> dict[str, Any]:
    """The finished rows of a bench without ``bench.json`` (its rows' summaries)."""
    from morpho.sims.bench import metric_keys, reach_table

    rows = []
    for name in ORDER:
        summary = path / name / "summary.json"
        if summary.is_file():
            s = json.loads(summary.read_text())
            keep = ("params", "dense_train_flops")
            rows.append({"name": name, **{k: s[k] for k in keep}, **metric_keys(s)})
    config = tomllib.loads((path / "morpho" / "config.toml").read_text())
    return {"rows": rows, "reach": reach_table(path, rows), "config": config}


def curve(bench: dict[str, Any], name: str) -> list[tuple[float, float]]:
    """``[(training FLOPs, val acc), ...]`` of a row, from its ``flops`` records."""
    lines = (bench["path"] / name / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    return [(r["dense_train_flops"], r["val_acc"]) for r in records if r["kind"] == "flops"]


def at_equal_flops(bench: dict[str, Any], a: str, b: str) -> tuple[float, float, float]:
    """``(FLOPs, val acc of a, val acc of b)`` at the smaller of the two rows' totals: each
    row's last evaluation within that budget."""
    ca, cb = curve(bench, a), curve(bench, b)
    budget = min(ca[-1][0], cb[-1][0])
    last = [max((f, acc) for f, acc in c if f <= budget * (1 + 1e-9))[1] for c in (ca, cb)]
    return budget, last[0], last[1]


def fmt_flops(value: float | None) -> str:
    return "never" if value is None else f"{value:.2e}"


def rows_table(benches: list[dict[str, Any]]) -> list[str]:
    names = [r["name"] for r in benches[0]["rows"]]
    out = [
        "| row | params | val acc (per seed) | test acc (per seed) | mean test acc | "
        "training FLOPs (mean) |",
        "|---|---|---|---|---|---|",
    ]
    for name in names:
        rows = [next(r for r in b["rows"] if r["name"] == name) for b in benches]
        val = " / ".join(f"{r['final_val_acc']:.3f}" for r in rows)
        test = " / ".join(f"{r['test_acc']:.3f}" for r in rows)
        params = f"{round(mean(r['params'] for r in rows)):,}"
        flops = mean(r["dense_train_flops"] for r in rows)
        mean_test = mean(r["test_acc"] for r in rows)
        out.append(f"| {name} | {params} | {val} | {test} | {mean_test:.3f} | {flops:.2e} |")
    return out


def goals_table(benches: list[dict[str, Any]]) -> list[str]:
    out = [
        "| seed | morpho FLOPs to 99% of fixed | fixed's own | saving | GroMo to 99% of MLP "
        "| test acc morpho / mlp / gromo | morpho − reset: test acc; val acc at equal FLOPs |",
        "|---|---|---|---|---|---|---|",
    ]
    for b in benches:
        reach = b["reach"]
        if "morpho-fixed" not in reach:
            continue  # a bench still on its first rows
        acc = {r["name"]: r["test_acc"] for r in b["rows"]}
        grown, fixed = reach["morpho"]["flops"], reach["morpho-fixed"]["flops"]
        saving = "-" if grown is None or not fixed else f"{1 - grown / fixed:.0%}"
        gromo = fmt_flops(reach["gromo"]["flops"]) if "gromo" in reach else "(not run)"
        peers = " / ".join(f"{acc[n]:.3f}" if n in acc else "-" for n in ("morpho", "mlp", "gromo"))
        equal = "(not run)"
        if "morpho-reset" in acc:
            budget, carried, fresh = at_equal_flops(b, "morpho", "morpho-reset")
            test = acc["morpho"] - acc["morpho-reset"]
            at = f"({carried:.3f} vs {fresh:.3f} at {budget:.2e})"
            equal = f"{test:+.3f}; {carried - fresh:+.3f} {at}"
        out.append(
            f"| {b['config']['train']['seed']} | {fmt_flops(grown)} | {fmt_flops(fixed)} | "
            f"{saving} | {gromo} | {peers} | {equal} |"
        )
    return out


def main(paths: list[str]) -> None:
    benches = load(paths)
    print("\n".join(rows_table(benches)))
    print()
    print("\n".join(goals_table(benches)))


if __name__ == "__main__":
    main(sys.argv[1:])
