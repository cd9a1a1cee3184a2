"""Data-parallel growth: one process against ``torchrun`` with N processes, side by side.

The same `morpho grow` run (same preset, seed and global batch) three ways, one after the
other on the same machine: one process with one torch thread, one process with N threads,
and ``torchrun --nproc_per_node N`` (gloo, one thread each; each rank trains on its slice
of the global batch, gradients and cell statistics all-reduced, the same growth decisions
on every rank). Reported: wall time of the whole command, training tokens/s (the run's own
``summary.json``: global tokens over training time), final validation bpc, cells, edits,
and whether the growth events (step, kind, cells) of the N-process run are those of the
one-process run.

    python benchmarks/data_parallel.py                      # small preset, 300 steps, N = 2
    python benchmarks/data_parallel.py --steps 600 --nproc 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(cmd: list[str], threads: int) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def events(path: Path) -> list[tuple]:
    rows = [json.loads(line) for line in (path / "events.jsonl").read_text().splitlines()]
    keys = ("step", "kind", "rule", "cells", "new_cells", "dead_cells", "new_edges", "dead_edges")
    return [tuple(json.dumps(r.get(k)) for k in keys) for r in rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--preset", default="small")
    args = ap.parse_args()
    grow = [
        "-m",
        "morpho",
        "grow",
        "--task",
        "lang",
        "--preset",
        args.preset,
        "--steps",
        str(args.steps),
        "--quiet",
        "--overwrite",
    ]
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={args.nproc}",
    ]
    setups = {
        "1 process, 1 thread": ([sys.executable, *grow], 1),
        f"1 process, {args.nproc} threads": ([sys.executable, *grow], args.nproc),
        f"torchrun {args.nproc} processes x 1 thread": ([*torchrun, *grow], 1),
    }
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, (cmd, threads)) in enumerate(setups.items()):
            out = Path(tmp) / f"run{i}"
            wall = run([*cmd, "--out", str(out)], threads)
            summary = json.loads((out / "summary.json").read_text())
            rows[name] = (wall, summary, events(out))
    base_wall, _, base_events = rows["1 process, 1 thread"]
    print(
        f"morpho grow --task lang --preset {args.preset} --steps {args.steps}; "
        f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
        f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} at the end\n"
    )
    print("| setup | wall (s) | speed-up | train tok/s | val bpc | cells | edits | same events |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for name, (wall, s, ev) in rows.items():
        print(
            f"| {name} | {wall:.1f} | {base_wall / wall:.2f}x | {s['tokens_per_s']:,.0f} | "
            f"{s['val_bpc']:.3f} | {s['cells']} | {s['edits']} | "
            f"{'yes' if ev == base_events else 'no'} |"
        )


if __name__ == "__main__":
    main()
