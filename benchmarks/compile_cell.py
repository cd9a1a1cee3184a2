"""Does ``torch.compile`` speed up a morpho training step? Eager vs compiled, side by side.

The cell type's ``forward_level`` (the batched level computation) is compiled with
``dynamic=True`` (a growing tissue changes the number of cells per level); both networks
train on the same batch, steps interleaved, medians reported.

    OMP_NUM_THREADS=1 python benchmarks/compile_cell.py --steps 20
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from throughput import objective

from morpho.network import Network, NetworkConfig
from morpho.trainer import TrainConfig, build_optimizer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--backend", default="inductor", help="torch.compile backend")
    args = ap.parse_args()
    torch.manual_seed(0)
    cfg = NetworkConfig(vocab_size=96)
    x = torch.randint(0, 96, (args.batch, args.seq + 1))
    runs = {}
    for compiled in (False, True):
        net = Network(cfg)
        if compiled:
            net.cell.forward_level = torch.compile(  # type: ignore[method-assign]
                net.cell.forward_level, dynamic=True, backend=args.backend
            )
        runs["compiled" if compiled else "eager"] = (net, build_optimizer(net, TrainConfig()))
    objectives = {id(net): objective(net, 96, torch.device("cpu")) for net, _ in runs.values()}

    def step(net: Network, opt: torch.optim.Optimizer) -> None:
        loss = objectives[id(net)](x[:, :-1], x[:, 1:])  # the run's objective (Trainer.loss)
        opt.zero_grad()
        loss.backward()
        opt.step()

    t0 = time.perf_counter()
    for net, opt in runs.values():
        for _ in range(3):
            step(net, opt)
    warm = time.perf_counter() - t0
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(args.steps):
        for k, (net, opt) in runs.items():
            t = time.perf_counter()
            step(net, opt)
            times[k].append(time.perf_counter() - t)
    eager = statistics.median(times["eager"])
    for k, v in times.items():
        med = statistics.median(v)
        print(f"{k}: {med * 1e3:.1f} ms/step, {eager / med:.2f}x eager")
    print(
        f"warm-up incl. compilation: {warm:.0f} s; torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s)"
    )


if __name__ == "__main__":
    main()
