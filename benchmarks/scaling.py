"""Step time, edit time and peak memory against tissue size, with the fitted exponents.

Each size runs in a fresh subprocess (so its peak resident memory is its own): a sparse
seed tissue of small cells (``d_cell`` 4, one head, ``mlp_ratio`` 1, ``seed_fan_in`` 2,
a fixed number of levels), two warm-up steps to fill AdamW's state, then ``--repeats``
rounds of: one training step (forward + backward + AdamW step, batch 1 × 16), one split,
one remove, one connect (each through ``morpho.split/remove/connect(..., optimizer=opt)``,
so AdamW's state migrates), and one **bank copy** — an identity gather of every bank, its
gradient and both AdamW moments, the floor under any edit that reallocates the banks.
Figures are medians. Memory is the process's resident high-water mark (``VmHWM``, reset
after the imports) minus its RSS at that reset: the tissue, its banks, gradients, AdamW
state and one step's activations. Exponents are least-squares slopes in log-log space.

    python benchmarks/scaling.py                                   # 64 → 100,000 cells
    python benchmarks/scaling.py --sizes 1000 10000 --profile     # + torch.profiler of a step
    python benchmarks/scaling.py --device cuda --sizes 1000 100000 1000000

On CUDA every timing is bracketed by ``torch.cuda.synchronize()`` and memory is
``torch.cuda.max_memory_allocated`` (reset before the tissue is built): the banks,
gradients, AdamW state and one step's activations on the device.

Goal: step time linear in cells + edges, edit time not growing with the tissue
beyond the bank copy, memory linear.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Callable

import numpy as np
import torch
from edit_cost import build, growth_exponent, make_edits, make_step, run_sizes, timed
from throughput import reset_peak_rss, resident

from morpho.network import Network
from morpho.trainer import TrainConfig, build_optimizer

EDITS = ("split", "remove", "connect")


def bank_copy(net: Network, opt: torch.optim.Optimizer) -> None:
    """Gather every row of every bank, its gradient and its AdamW moments (a full copy)."""
    for p in net.banks.values():
        rows = torch.arange(p.shape[0], device=p.device)
        state = opt.state.get(p, {})
        for t in (p.detach(), p.grad, state.get("exp_avg"), state.get("exp_avg_sq")):
            if t is not None:
                t.index_select(0, rows)


def measure(n_cells: int, args: argparse.Namespace) -> dict[str, float]:
    """One size, in this process: medians of step, edits and bank copy; peak memory."""
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    rss0 = reset_peak_rss()
    net, _ = build(n_cells, args)
    net.to(device)
    opt = build_optimizer(net, TrainConfig())
    step = make_step(net, opt, args, device)
    for _ in range(2):
        step()
    edits = make_edits(net, opt, np.random.default_rng(0))
    times: dict[str, list[float]] = {k: [] for k in ("step", *EDITS, "copy")}
    for _ in range(args.repeats):
        times["step"].append(timed(step, device))
        for name in EDITS:
            times[name].append(timed(edits[name], device))
        times["copy"].append(timed(lambda: bank_copy(net, opt), device))
    out = {k: statistics.median(v) for k, v in times.items()}
    peak = (
        torch.cuda.max_memory_allocated(device)
        if device.type == "cuda"
        else resident("VmHWM") - rss0
    )
    out.update(
        cells=net.tissue.num_nodes,
        edges=int(net.tissue.edge_index.shape[1]),
        params=net.n_params(),
        peak_mib=peak / 2**20,
    )
    if args.profile:
        profile_step(step)
    return out


def profile_step(step: Callable[[], None]) -> None:
    """torch.profiler table of one training step, by self CPU time."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        step()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15), flush=True)


def run_child(n_cells: int, args: argparse.Namespace) -> dict[str, float]:
    argv = [sys.executable, __file__, "--_child", str(n_cells)] + sys.argv[1:]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    if args.profile:
        print(out.rsplit("\n", 2)[0], flush=True)
    return json.loads(out.strip().splitlines()[-1])


def fits(rows: list[dict[str, float]]) -> dict[str, float]:
    """Exponents: step and memory against cells + edges, edits and copy against cells."""
    size = [r["cells"] + r["edges"] for r in rows]
    cells = [r["cells"] for r in rows]
    out = {
        "step": growth_exponent(size, [r["step"] for r in rows]),
        "memory": growth_exponent(size, [r["peak_mib"] for r in rows]),
    }
    out.update({k: growth_exponent(cells, [r[k] for r in rows]) for k in (*EDITS, "copy")})
    return out


def report(rows: list[dict[str, float]], args: argparse.Namespace) -> str:
    lines = [
        f"batch {args.batch} x seq {args.seq_len}, d_cell {args.d_cell}, n_heads 1, mlp_ratio 1, "
        f"{args.levels} levels, seed_fan_in {args.fan_in}, AdamW (trainer.build_optimizer), "
        f"median of {args.repeats}; torch {torch.__version__}, {args.threads} thread(s), "
        f"{device_name(args.device)}, load average "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} at the end",
        "",
        "| cells | edges | params | step (ms) | µs / (cell+edge) | split (ms) | remove (ms) "
        "| connect (ms) | bank copy (ms) | split / copy | peak mem (MiB) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        per = 1e6 * r["step"] / (r["cells"] + r["edges"])
        ms = " | ".join(f"{1e3 * r[k]:.1f}" for k in EDITS)
        lines.append(
            f"| {int(r['cells']):,} | {int(r['edges']):,} | {int(r['params']):,} "
            f"| {1e3 * r['step']:.1f} | {per:.2f} | {ms} | {1e3 * r['copy']:.1f} "
            f"| {r['split'] / r['copy']:.1f} | {r['peak_mib']:.1f} |"
        )
    if len(rows) > 1:
        large = [r for r in rows if r["cells"] >= 1000]
        for label, sub in (("all sizes", rows), ("sizes >= 1,000", large)):
            if len(sub) > 1:
                exps = ", ".join(f"{k} {v:.2f}" for k, v in fits(sub).items())
                lines += [
                    "",
                    f"exponents k, {label} (step, memory ∝ (cells+edges)^k; "
                    f"edits, copy ∝ cells^k): {exps}",
                ]
    return "\n".join(lines)


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return f"{torch.cuda.get_device_name(device)} ({device})"
    return platform.processor() or platform.machine()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[64, 250, 1000, 4000, 16000, 50000, 100000]
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--seq-len", type=int, default=16)
    parser.add_argument("--d-cell", type=int, default=4)
    parser.add_argument("--levels", type=int, default=16)
    parser.add_argument("--fan-in", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--profile", action="store_true", help="torch.profiler of one step")
    parser.add_argument("--json", default="", help="also write the rows here")
    parser.add_argument("--_child", type=int, default=0, help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit(f"scaling.py: --device {args.device} needs CUDA; this torch sees no GPU")
    if args._child:
        print(json.dumps(measure(args._child, args)))
        return
    run_sizes(args, run_child, report)


if __name__ == "__main__":
    main()
