"""Size and load time of the interactive growth page (``morpho render RUN --out x.html``).

A tissue is grown by engine edits to 500 cells from an 80-cell seed (``morpho.viz.synthetic``:
two splits a round, an apoptosis every third round, an edge every second, one snapshot a
round: about 250 snapshots), the page is written exactly as the CLI does, and headless
Chromium (software WebGL, SwiftShader) opens it from disk ``--loads`` times. Reported: the
page's bytes, the seconds to build it in Python, and per load the seconds from navigation to
the load event (as this script sees it over the DevTools pipe, and as the page's navigation
timing records it) and to the page's first drawn frame (``morphoPage.readyMs``), median of
the loads; then the mean time to step the slider to a snapshot and draw it.

    python benchmarks/html_page.py                         # grows runs/synth500_page if absent
    python benchmarks/html_page.py --run runs/synth500_page --loads 5

Goal: under 20 MB, open in under 3 s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

from morpho.viz.headless import Browser
from morpho.viz.page import render_page
from morpho.viz.runs import load_run, require_snapshots
from morpho.viz.synthetic import synthetic_run

SIZE = (1400, 860)


def grow(run: Path, cells: int) -> None:
    try:
        require_snapshots(run)
    except ValueError:
        synthetic_run(run, n_cells=cells, level_sizes=(8, 32, 32, 8), fan_in=3, splits_per_round=2)


def wait_for(b: Browser, condition: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not b.eval(f"!!({condition})"):
        if time.monotonic() > deadline:
            raise TimeoutError(condition)
        time.sleep(0.01)


def scrub_ms(b: Browser, n_snapshots: int, n: int = 20) -> float:
    """Mean ms to move the slider to a snapshot and have it drawn, over ``n`` snapshots
    spread over the run (timed in the page, from the input event to the frame after)."""
    return float(
        b.eval(
            f"""new Promise((done) => {{
              const s = document.getElementById('slider'), n = {n}, t0 = performance.now();
              let i = 0;
              const next = () => {{
                if (i === n) return done((performance.now() - t0) / n);
                s.value = String(Math.round(i++ * ({n_snapshots} - 1) / (n - 1)));
                s.dispatchEvent(new Event('input'));
                requestAnimationFrame(() => requestAnimationFrame(next));
              }};
              next();
            }})"""
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=500)
    parser.add_argument("--loads", type=int, default=3)
    parser.add_argument("--run", type=Path, default=Path("runs/synth500_page"))
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    grow(args.run, args.cells)
    run = load_run(args.run)
    out = args.run.parent / f"{args.run.name}.html"
    t0 = time.perf_counter()
    render_page(args.run, out, overwrite=True)
    build_s = time.perf_counter() - t0
    loads, in_page, ready = [], [], []
    with Browser(timeout=300) as b:
        for _ in range(args.loads):
            loads.append(b.open(out, SIZE))
            wait_for(b, "window.morphoPage && window.morphoPage.frames > 0")
            ready.append(b.eval("window.morphoPage.readyMs") / 1000)
            nav = "performance.getEntriesByType('navigation')[0].loadEventEnd"
            in_page.append(b.eval(nav) / 1000)
        scrub = scrub_ms(b, len(run.snapshots))
        errors = list(b.errors)
    row = {
        "cells": run.snapshots[-1].n_cells,
        "edges": run.snapshots[-1].n_edges,
        "snapshots": len(run.snapshots),
        "cell_rows": sum(s.n_cells for s in run.snapshots),
        "events": len(run.events),
        "page_MB": round(out.stat().st_size / 1e6, 2),
        "build_s": round(build_s, 1),
        "load_event_s": round(statistics.median(loads), 2),
        "load_event_in_page_s": round(statistics.median(in_page), 2),
        "first_frame_s": round(statistics.median(ready), 2),
        "scrub_ms_per_snapshot": round(scrub, 1),
        "console_errors": len(errors),
        "loadavg": round(os.getloadavg()[0], 1),
        "machine": platform.processor() or platform.machine(),
    }
    print(json.dumps(row))


if __name__ == "__main__":
    main()
