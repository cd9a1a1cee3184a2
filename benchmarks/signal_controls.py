"""Does the default tissue's signal decide? ``morpho grow --task lang`` against its blind controls.

For each seed: the default run (its rules read the free energy, gate and edge gradients), then
the same events replayed blind from its ``events.jsonl`` (``[growth] control``): ``random``
(same kinds and steps, random cells) and ``schedule`` (same kinds, evenly spaced steps, random
cells). Prints each row's final and best val bpc, training FLOPs and wall time, and the paired
difference signal − control (mean ± standard error over seeds). Every row runs at the preset's
learning rate (the one tuned for the default run; the controls are not re-tuned).

    OMP_NUM_THREADS=1 python benchmarks/signal_controls.py --seeds 0 1 2 --out runs/signal_controls
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

CONTROLS = ("random", "schedule")


def grow(out: Path, seed: int, steps: int | None, config: Path | None) -> dict[str, float]:
    """One ``morpho grow --task lang`` run into ``out``; its summary and wall time."""
    cmd = [sys.executable, "-m", "morpho", "grow", "--task", "lang", "--seed", str(seed)]
    cmd += ["--out", str(out), "--overwrite", "--quiet"]
    if steps is not None:
        cmd += ["--steps", str(steps)]
    if config is not None:
        cmd += ["--config", str(config)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    summary = json.loads((out / "summary.json").read_text())
    return {
        "val_bpc": summary["val_bpc"],
        "best_val_bpc": summary["best_val_bpc"],
        "train_flops": summary["train_flops"],
        "edits": summary["edits"],
        "wall_s": time.perf_counter() - t0,
    }


def control_config(out: Path, control: str, trace: Path) -> Path:
    path = out.parent / f"{out.name}.toml"
    path.write_text(f'[growth]\ncontrol = "{control}"\ncontrol_from = "{trace}"\n')
    return path


def paired(rows: dict[str, dict[int, dict[str, float]]], control: str, key: str) -> str:
    diffs = [rows["signal"][s][key] - rows[control][s][key] for s in rows["signal"]]
    if len(diffs) < 2:
        return f"{diffs[0]:+.4f} (1 seed)"
    se = statistics.stdev(diffs) / len(diffs) ** 0.5
    return f"{statistics.mean(diffs):+.4f} ± {se:.4f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, help="override the preset's steps (tests)")
    ap.add_argument("--out", type=Path, default=Path("runs/signal_controls"))
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    rows: dict[str, dict[int, dict[str, float]]] = {"signal": {}, **{c: {} for c in CONTROLS}}
    for seed in a.seeds:
        ref = a.out / f"signal-s{seed}"
        rows["signal"][seed] = grow(ref, seed, a.steps, None)
        for control in CONTROLS:
            out = a.out / f"{control}-s{seed}"
            cfg = control_config(out, control, (ref / "events.jsonl").resolve())
            rows[control][seed] = grow(out, seed, a.steps, cfg)
        for name, by_seed in rows.items():
            print(json.dumps({"row": name, "seed": seed, **by_seed[seed]}), flush=True)
    print("| row | seed | val bpc | best val bpc | edits | train FLOPs | wall s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, by_seed in rows.items():
        for seed, r in by_seed.items():
            print(
                f"| {name} | {seed} | {r['val_bpc']:.4f} | {r['best_val_bpc']:.4f} | "
                f"{r['edits']:.0f} | {r['train_flops']:.3e} | {r['wall_s']:.0f} |"
            )
    for control in CONTROLS:
        print(
            f"signal − {control}: val bpc {paired(rows, control, 'val_bpc')}, "
            f"train FLOPs {paired(rows, control, 'train_flops')}"
        )


if __name__ == "__main__":
    main()
