"""Render cost of a growth movie: a 500-cell tissue over 200 frames to mp4, on 2 CPU cores.

The tissue is grown by engine edits from a sparse 80-cell seed (``morpho.viz.synthetic``:
splits, now and then an apoptosis or a new edge, one snapshot per round), then rendered
off-screen exactly as ``morpho render RUN --out growth.mp4`` does. The process is pinned to
``--cores`` cores and Mesa's llvmpipe to as many threads, so the figure is that of a
2-core CPU machine even on a bigger one. Reports each phase, the per-frame cost, the CPU
time of the movie (all threads) and the machine's load, since a shared machine slows the
wall-clock figure.

    python benchmarks/render_cost.py                          # 500 cells, 200 frames, 1280x720
    python benchmarks/render_cost.py --run runs/synth500      # reuse (or keep) the tissue

Goal: the movie in under 2 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path


def pin(cores: int) -> list[int]:
    """Run on ``cores`` CPUs and let llvmpipe use as many threads (before any GL starts)."""
    os.environ["LP_NUM_THREADS"] = str(cores)
    os.environ.setdefault("OMP_NUM_THREADS", str(cores))
    if hasattr(os, "sched_setaffinity"):
        available = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, set(available[:cores]))
        return sorted(os.sched_getaffinity(0))
    return []


def cpu_seconds() -> float:
    """CPU time of this process (all its threads, llvmpipe's too) and of its waited-for
    children (the ffmpeg encoder)."""
    import resource

    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usage)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=500)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--color", default="free-energy")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument(
        "--run",
        type=Path,
        default=None,
        help="run directory: reused if it has snapshots, else grown there",
    )
    args = parser.parse_args()
    cpus = pin(args.cores)

    import torch

    torch.set_num_threads(args.cores)
    from morpho.viz.render import RenderConfig, parse_size, render_movie
    from morpho.viz.runs import load_run
    from morpho.viz.synthetic import synthetic_run
    from morpho.viz.timeline import Timeline

    work = Path(tempfile.mkdtemp(prefix="render_cost."))
    run_dir = args.run or work / "run"
    t0 = time.perf_counter()
    if not (run_dir / "snapshots").is_dir():
        synthetic_run(
            run_dir, n_cells=args.cells, level_sizes=(8, 32, 32, 8), fan_in=3, splits_per_round=5
        )
    grow_s = time.perf_counter() - t0

    run = load_run(run_dir)
    t0 = time.perf_counter()
    Timeline(run, args.color)  # layout and colours alone, for the breakdown
    layout_s = time.perf_counter() - t0

    cfg = RenderConfig(color=args.color, frames=args.frames, size=parse_size(args.size))
    out = work / "growth.mp4"
    t0, cpu0 = time.perf_counter(), cpu_seconds()
    render_movie(run_dir, out, cfg)
    movie_s, movie_cpu_s = time.perf_counter() - t0, cpu_seconds() - cpu0

    final = run.snapshots[-1]
    print(
        json.dumps(
            {
                "cells": final.n_cells,
                "edges": final.n_edges,
                "snapshots": len(run.snapshots),
                "frames": args.frames,
                "size": args.size,
                "color": args.color,
                "grow_tissue_s": round(grow_s, 1),
                "layout_s": round(layout_s, 2),
                "movie_s": round(movie_s, 1),
                "per_frame_ms": round(1000 * movie_s / args.frames, 1),
                "movie_cpu_s": round(movie_cpu_s, 1),
                "load_avg_1min": round(os.getloadavg()[0], 1),
                "mp4_bytes": out.stat().st_size,
                "goal_s": 120,
                "ok": movie_s < 120,
                "cores": cpus,
                "machine": f"{platform.processor() or platform.machine()}, "
                f"{os.cpu_count()} CPUs visible, {platform.platform()}",
                "renderer": _renderer(),
            },
            indent=2,
        )
    )


def _renderer() -> str:
    import pyvista as pv

    try:
        return str(pv.GPUInfo().renderer)
    except Exception as e:  # noqa: BLE001 — informational only
        return f"unknown ({e})"


if __name__ == "__main__":
    main()
