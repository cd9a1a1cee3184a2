"""Edit cost vs training-step cost, at growing bank sizes.

One split / remove / connect, *including* the migration of AdamW's state (every bank's
``exp_avg`` and ``exp_avg_sq``), is timed against one training step (forward, backward,
AdamW step) of the same network. Cells are small and wired sparsely, so the bank size —
not the cell width — drives both costs. Medians of ``--repeats`` runs; the growth exponent
``k`` of ``edit time ∝ cells^k`` is a least-squares fit in log-log space.

    python benchmarks/edit_cost.py                          # 64, 1,000, 10,000 cells
    python benchmarks/edit_cost.py --sizes 64 1000 --repeats 5 --profile

Goal: at 1,000 cells an edit costs < 5% of a step; ``k <= 1``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import platform
import pstats
import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from throughput import objective

import morpho
from morpho.network import Network, NetworkConfig
from morpho.tissue import HIDDEN
from morpho.trainer import TrainConfig, build_optimizer

VOCAB = 64


def level_sizes(n_cells: int, n_levels: int) -> tuple[int, ...]:
    """``n_cells`` spread evenly over ``n_levels`` levels."""
    base, extra = divmod(n_cells, n_levels)
    return tuple(base + (i < extra) for i in range(n_levels))


def build(n_cells: int, args: argparse.Namespace) -> tuple[Network, torch.optim.Optimizer]:
    cfg = NetworkConfig(
        vocab_size=VOCAB,
        d_cell=args.d_cell,
        n_heads=1,
        mlp_ratio=1,
        level_sizes=level_sizes(n_cells, args.levels),
        seed_fan_in=args.fan_in,
        seed=0,
    )
    net = Network(cfg)
    return net, build_optimizer(net, TrainConfig())


def make_step(
    net: Network,
    opt: torch.optim.Optimizer,
    args: argparse.Namespace,
    device: torch.device | None = None,
) -> Callable[[], None]:
    gen = torch.Generator().manual_seed(0)
    loss_of = objective(net, VOCAB, device or torch.device("cpu"))  # the run's objective

    def step() -> None:
        x = torch.randint(0, VOCAB, (args.batch, args.seq_len + 1), generator=gen).to(device)
        loss = loss_of(x[:, :-1], x[:, 1:])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def make_edits(
    net: Network, opt: torch.optim.Optimizer, rng: np.random.Generator
) -> dict[str, Callable[[], None]]:
    """Edits on random hidden cells; split and remove alternate so the size stays put."""

    def hidden() -> int:
        ids = net.tissue.cell_id[net.tissue.role == HIDDEN]
        return int(ids[rng.integers(len(ids))])

    def split() -> None:
        morpho.split(net, hidden(), optimizer=opt, noise=0.01)

    def remove() -> None:
        morpho.remove(net, hidden(), optimizer=opt)

    def connect() -> None:
        t = net.tissue
        while True:
            a, b = rng.integers(t.num_nodes, size=2)
            if t.level[a] < t.level[b]:
                exists = bool(((t.edge_index[0] == a) & (t.edge_index[1] == b)).any())
                if not exists:
                    break
        morpho.connect(net, int(t.cell_id[a]), int(t.cell_id[b]), optimizer=opt)

    return {"split": split, "remove": remove, "connect": connect}


def timed(fn: Callable[[], None], device: torch.device | None = None) -> float:
    """Seconds of one call; on CUDA, with the queue drained before and after."""
    cuda = device is not None and device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    fn()
    if cuda:
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0


def measure(n_cells: int, args: argparse.Namespace) -> dict[str, float]:
    net, opt = build(n_cells, args)
    step = make_step(net, opt, args)
    for _ in range(2):  # warm-up; fills AdamW's state
        step()
    edits = make_edits(net, opt, np.random.default_rng(0))
    times: dict[str, list[float]] = {"step": [], **{k: [] for k in edits}}
    for _ in range(args.repeats):
        times["step"].append(timed(step))
        for name, edit in edits.items():
            times[name].append(timed(edit))
    out = {k: statistics.median(v) for k, v in times.items()}
    out.update(
        cells=net.tissue.num_nodes, edges=int(net.tissue.edge_index.shape[1]), params=net.n_params()
    )
    if args.profile:
        profile_edits(edits, args.repeats)
    return out


def profile_edits(edits: dict[str, Callable[[], None]], repeats: int) -> None:
    for name, edit in edits.items():
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(repeats):
            edit()
        prof.disable()
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(12)
        print(f"--- profile of {repeats} x {name}\n{buf.getvalue()}")


def growth_exponent(cells: Sequence[float], seconds: Sequence[float]) -> float:
    """Slope of log(seconds) against log(cells)."""
    return float(np.polyfit(np.log(cells), np.log(seconds), 1)[0])


def report(rows: list[dict[str, float]], args: argparse.Namespace) -> str:
    kinds = ("split", "remove", "connect")
    lines = [
        f"batch {args.batch} x seq {args.seq_len}, d_cell {args.d_cell}, n_heads 1, mlp_ratio 1, "
        f"{args.levels} levels, seed_fan_in {args.fan_in}, AdamW (trainer.build_optimizer), "
        f"median of {args.repeats}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.processor() or platform.machine()}",
        "",
        "| cells | edges | params | step (ms) | split (ms) | remove (ms) | connect (ms) "
        "| split/step | remove/step | connect/step |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ms = [f"{1e3 * r[k]:.2f}" for k in ("step", *kinds)]
        ratios = [f"{100 * r[k] / r['step']:.1f}%" for k in kinds]
        lines.append(
            f"| {int(r['cells']):,} | {int(r['edges']):,} | {int(r['params']):,} | "
            + " | ".join(ms + ratios)
            + " |"
        )
    if len(rows) > 1:
        cells = [r["cells"] for r in rows]
        exps = {k: growth_exponent(cells, [r[k] for r in rows]) for k in ("step", *kinds)}
        lines += [
            "",
            "growth exponent k (time ∝ cells^k): "
            + ", ".join(f"{k} {v:.2f}" for k, v in exps.items()),
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 1000, 10000])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=32)
    parser.add_argument("--d-cell", type=int, default=8)
    parser.add_argument("--levels", type=int, default=6)
    parser.add_argument("--fan-in", type=int, default=4)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--profile", action="store_true", help="cProfile the edits")
    parser.add_argument("--json", type=str, default="", help="also write the rows here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    run_sizes(args, measure, report)


def run_sizes(args: argparse.Namespace, measure_one, report_rows) -> list[dict]:  # type: ignore[no-untyped-def]
    """Measure every ``args.sizes``, echo each row, print the report, write ``--json``."""
    rows = []
    for n in args.sizes:
        rows.append(measure_one(n, args))
        print(f"{n} cells: " + ", ".join(f"{k} {v:.4g}" for k, v in rows[-1].items()), flush=True)
    print(report_rows(rows, args))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return rows


if __name__ == "__main__":
    main()
