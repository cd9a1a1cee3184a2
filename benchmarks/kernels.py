"""The engine's hot kernels against their plain-autograd baselines, side by side.

Each row times forward + backward of one level-sized call, the two variants interleaved
call by call on the same inputs (medians), so load on a shared machine hits both alike:

* **recurrence**: ``morpho.cells_thermo.linear_recurrence`` (FFT convolution, hand-written
  backward) against ``fft_recurrence`` (the same FFTs, differentiated by autograd);
* **aggregation**: the messages from a source level into a target level as one dense
  ``(n_target, n_source)`` strength matrix times the stacked outputs, against a gather of
  each edge's source output, a scale by its strength and a scatter-add (the path the
  network keeps for sparse level pairs, see ``morpho.network.DENSE_AGGREGATION``);
* **projection**: ``bank_matmul(x, w, add=y)`` (one ``baddbmm``) against
  ``y + einsum("nbtd,nde->nbte", x, w)``.

    OMP_NUM_THREADS=1 python benchmarks/kernels.py
    OMP_NUM_THREADS=1 python benchmarks/kernels.py --batch 32 --seq 128 --d-cell 64
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from morpho.cells import bank_matmul
from morpho.cells_thermo import fft_recurrence, linear_recurrence


def interleaved(fns: dict[str, Callable[[], None]], repeats: int) -> dict[str, float]:
    """Median seconds per call of each function, calls interleaved."""
    for f in fns.values():
        for _ in range(3):
            f()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def recurrence_pair(n: int, B: int, T: int, d: int) -> dict[str, Callable[[], None]]:
    gen = torch.Generator().manual_seed(0)
    u = torch.randn(n, B, T, d, generator=gen, requires_grad=True)
    log_a = F.logsigmoid(torch.randn(n, d, generator=gen) * 2).requires_grad_()
    probe = torch.randn(n, B, T, d, generator=gen)

    def run(fn: Callable[..., torch.Tensor]) -> Callable[[], None]:
        def call() -> None:
            torch.autograd.grad((fn(u, log_a) * probe).sum(), (u, log_a))

        return call

    return {"hand-written backward": run(linear_recurrence), "autograd": run(fft_recurrence)}


def aggregation_pair(n: int, B: int, T: int, d: int) -> dict[str, Callable[[], None]]:
    gen = torch.Generator().manual_seed(1)
    n_src = n
    y = torch.randn(n_src, B, T, d, generator=gen, requires_grad=True)
    src = torch.arange(n_src).repeat(n)  # a dense level pair: every source feeds every target
    dst = torch.arange(n).repeat_interleave(n_src)
    s = torch.randn(len(src), generator=gen, requires_grad=True)
    probe = torch.randn(n, B, T, d, generator=gen)
    flat = dst * n_src + src

    def dense() -> None:
        w = s.new_zeros(n * n_src).index_put((flat,), s, accumulate=True).view(n, n_src)
        x = (w @ y.reshape(n_src, -1)).view(n, B, T, d)
        torch.autograd.grad((x * probe).sum(), (y, s))

    def gathered() -> None:
        msg = y.index_select(0, src) * s.view(-1, 1, 1, 1)
        x = y.new_zeros(n, B, T, d).index_add(0, dst, msg)
        torch.autograd.grad((x * probe).sum(), (y, s))

    return {"dense matrix": dense, "gather-scale-scatter": gathered}


def projection_pair(n: int, B: int, T: int, d: int) -> dict[str, Callable[[], None]]:
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(n, B, T, d, generator=gen, requires_grad=True)
    w = torch.randn(n, d, d, generator=gen, requires_grad=True)
    add = torch.randn(n, B, T, d, generator=gen, requires_grad=True)
    probe = torch.randn(n, B, T, d, generator=gen)

    def ours() -> None:
        torch.autograd.grad((bank_matmul(x, w, add=add) * probe).sum(), (x, w, add))

    def einsum() -> None:
        out = add + torch.einsum("nbtd,nde->nbte", x, w)
        torch.autograd.grad((out * probe).sum(), (x, w, add))

    return {"bank_matmul (baddbmm)": ours, "einsum + add": einsum}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, nargs="+", default=[2, 4, 16], help="cells per level")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--d-cell", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=40)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"batch {args.batch} x seq {args.seq}, d_cell {args.d_cell}, {args.repeats} "
        f"interleaved calls (median), {torch.get_num_threads()} torch thread(s), "
        f"torch {torch.__version__}"
    )
    print("\n| kernel | cells | new (ms) | baseline (ms) | speed-up |")
    print("|---|---:|---:|---:|---:|")
    for name, pair in (
        ("recurrence", recurrence_pair),
        ("aggregation", aggregation_pair),
        ("projection", projection_pair),
    ):
        for n in args.cells:
            fns = pair(n, args.batch, args.seq, args.d_cell)
            t = interleaved(fns, args.repeats)
            new, base = (t[k] for k in fns)
            print(
                f"| {name}: {' vs '.join(fns)} | {n} | {new * 1e3:.2f} | {base * 1e3:.2f} | "
                f"{base / new:.2f}x |"
            )


if __name__ == "__main__":
    main()
