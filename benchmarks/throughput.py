"""Training throughput and peak memory: morpho against static Transformers, side by side.

Four models train in one process on the very same batches, one step of each in turn (so
load on a shared machine hits them alike): the morpho network; the morpho network with its
gates forced shut (gate bias −20: the geometric core is still computed and multiplied by
≈ 0); a static Transformer of the **same parameter count**; one of the **same forward
FLOPs per token** (morpho charged with every gate open, since the engine always computes
the core). A step is forward + backward + ``AdamW.step()`` (``trainer.build_optimizer``),
cross-entropy (+ 0.1 · aux loss for morpho). tokens/s = batch · seq / median step time.

Peak memory: each model is re-run alone in a fresh subprocess. On CUDA,
``torch.cuda.max_memory_allocated`` minus the allocation before the first step. On CPU
there is no allocator counter: we reset the kernel's resident high-water mark (write ``5``
to ``/proc/self/clear_refs``, Linux ≥ 4.0) just before the first step and report ``VmHWM``
minus ``VmRSS`` at that moment: the peak of gradients, AdamW state and activations (plus
any malloc arena growth) above the built model, in resident bytes.

**Inference with gate skipping** (``--mode infer``, DESIGN §3). The same morpho network runs
``no_grad`` in eval mode twice over, on the same batches, one forward of each in turn
(order alternating): ``gate_skip`` on (tokens with ``g < --gate-skip`` skip the geometric
core) against off (dense). A stand-in for a trained predictor (random ``w_pred``, std 1/√d)
makes surprise, hence the gate, vary per token; each cell's gate bias is then calibrated so
that a share ``--open`` of its tokens is open. Row "1" sets the bias to +20 (all open: the
dense-fallback control), row "0" to −20 (all shut: the ceiling of what skipping saves).
Reported: the open share measured on the timed batches, the most open row's share of the
sequence (what the compact core pads to), tokens/s of each (medians), their ratio, and the
largest logit change the dropped terms cause.

    python benchmarks/throughput.py                       # CPU, small preset network
    python benchmarks/throughput.py --device cuda --batch 64 --seq 128 --d-cell 64
    python benchmarks/throughput.py --mode infer --open 0 0.1 1 --steps 40

Goal: morpho ≥ 0.8× the equal-FLOPs Transformer's tokens/s; with gates mostly
closed, more tokens/s than dense.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import torch

from morpho.cells import LevelOutput
from morpho.cells_thermo import DENSE_CROSSOVER
from morpho.config import RunConfig
from morpho.network import Network, NetworkConfig
from morpho.sims.baselines import MODELS, CharTransformer, baseline_config, build_baseline
from morpho.trainer import Model, TrainConfig, Trainer, build_optimizer

CLOSED_GATE_BIAS = -20.0  # σ(-20 + log-surprise) ≈ 0: the demon keeps every core shut
OPEN_GATE_BIAS = 20.0  # σ(20 + log-surprise) ≈ 1: every core open


def build_morpho(
    args: argparse.Namespace,
    gates_shut: bool = False,
    gate_skip: float = 0.0,
    gate_skip_backward: float = 0.0,
) -> Network:
    if args.preset:  # the run preset's network (cell type, widths, tissue) at --vocab
        base = RunConfig.preset(args.preset).network
        cfg = replace(base, vocab_size=args.vocab, seed=0)
    else:
        cfg = NetworkConfig(
            vocab_size=args.vocab,
            d_cell=args.d_cell,
            level_sizes=tuple(args.levels),
            n_heads=args.n_heads,
            mlp_ratio=args.mlp_ratio,
            gate_skip=gate_skip,
            gate_skip_backward=gate_skip_backward,
            seed=0,
        )
    net = Network(cfg)
    if gates_shut:
        with torch.no_grad():
            net.banks["gate"][:, 1] = CLOSED_GATE_BIAS
    return net


def transformer_flops(target_params: int, args: argparse.Namespace) -> float:
    """Forward FLOPs per token of the Transformer sized to ``target_params`` (meta device)."""
    cfg = baseline_config("transformer", args.vocab, target_params)
    with torch.device("meta"):
        return MODELS[type(cfg)](cfg).flops_per_token(args.seq)


def params_for_flops(flops: float, args: argparse.Namespace) -> int:
    """Parameter target whose Transformer costs ``flops`` per token (bisection in log space)."""
    lo, hi = 1_000, 1_000
    while transformer_flops(hi, args) < flops:
        hi *= 2
    while hi - lo > max(1, lo // 500):
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if transformer_flops(mid, args) < flops else (lo, mid)
    return min((lo, hi), key=lambda p: abs(transformer_flops(p, args) - flops))


def build_models(args: argparse.Namespace) -> dict[str, Any]:  # Networks and baselines
    net = build_morpho(args)
    flops = net.flops_per_token(args.seq, gate=1.0)
    shut = {"morpho gates shut": build_morpho(args, gates_shut=True)} if "gate" in net.banks else {}
    return {
        "morpho": net,
        **shut,
        "transformer =params": build_baseline("transformer", args.vocab, net.n_params()),
        "transformer =FLOPs": build_baseline(
            "transformer", args.vocab, params_for_flops(flops, args)
        ),
    }


class RandomTokens:
    """A language task of uniform random token ids: what a timed step trains on."""

    name = "random-tokens"

    def __init__(self, vocab_size: int) -> None:
        self.vocab_size = vocab_size

    def batch(
        self, split: str, batch_size: int, seq_len: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randint(0, self.vocab_size, (batch_size, seq_len + 1), generator=generator)
        return x[:, :-1], x[:, 1:]  # (B, T) each

    def eval_batches(
        self, n_batches: int, batch_size: int, seq_len: int
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        gen = torch.Generator().manual_seed(0)
        return [self.batch("val", batch_size, seq_len, gen) for _ in range(n_batches)]

    def describe(self) -> dict[str, object]:
        return {"vocab_size": self.vocab_size}


def objective(
    model: Model, vocab: int, device: torch.device
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The loss a training run minimises for ``model`` (:meth:`Trainer.loss`: cross-entropy
    and, for a growing network, its cells' prediction loss and gate penalty)."""
    trainer = Trainer(model, RandomTokens(vocab), TrainConfig(device=str(device)))
    return lambda x, y: trainer.loss(x, y)[0]


def make_step(model: Any, device: torch.device, vocab: int) -> Callable[[torch.Tensor], None]:
    """One training step of ``model`` on a (B, T + 1) batch of ids below ``vocab``."""
    model.to(device)
    opt = build_optimizer(model, TrainConfig())
    loss_of = objective(model, vocab, device)

    def step(x: torch.Tensor) -> None:
        loss = loss_of(x[:, :-1], x[:, 1:])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def batches(args: argparse.Namespace, device: torch.device) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    n = args.warmup + args.steps
    return [
        torch.randint(0, args.vocab, (args.batch, args.seq + 1), generator=gen).to(device)
        for _ in range(n)
    ]


def in_turn(
    fns: Sequence[Callable[[torch.Tensor], object]],
    data: list[torch.Tensor],
    args: argparse.Namespace,
    device: torch.device,
    alternate: bool = False,
    after: Callable[[int], None] | None = None,
) -> list[float]:
    """Median seconds per call of each function: on every batch one call of each in turn
    (the order reversed on even batches with ``alternate``), the first ``args.warmup``
    batches untimed; ``after(j)`` runs untimed after each call of function ``j``."""
    times: list[list[float]] = [[] for _ in fns]
    for i, x in enumerate(data):
        order = range(len(fns)) if not alternate or i % 2 else reversed(range(len(fns)))
        for j in order:
            sync(device)
            t0 = time.perf_counter()
            fns[j](x)
            sync(device)
            if i >= args.warmup:
                times[j].append(time.perf_counter() - t0)
            if after is not None:
                after(j)
    return [statistics.median(t) for t in times]


def time_side_by_side(
    models: dict[str, Any], args: argparse.Namespace, device: torch.device
) -> dict[str, float]:
    """Median seconds per step of each model; one step of each in turn on the same batch."""
    steps = [make_step(m, device, args.vocab) for m in models.values()]
    return dict(zip(models, in_turn(steps, batches(args, device), args, device), strict=True))


def resident(field: str) -> int:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process in bytes, from /proc/self/status."""
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith(field + ":"))
    return int(line.split()[1]) * 1024


def reset_peak_rss() -> int:
    """Reset the resident high-water mark to the current RSS; returns that RSS in bytes."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return resident("VmRSS")


def peak_memory_child(name: str, args: argparse.Namespace) -> int:
    """Bytes of training high-water mark of model ``name`` alone (run in a subprocess)."""
    device = torch.device(args.device)
    model = build_models(args)[name]
    step = make_step(model, device, args.vocab)
    data = batches(args, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    else:
        before = reset_peak_rss()
    for x in data:
        step(x)
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) - before
    return resident("VmHWM") - before


def peak_memory(name: str, args: argparse.Namespace) -> int:
    argv = [sys.executable, __file__, "--_child", name] + sys.argv[1:]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return int(out.strip().splitlines()[-1])


def report(
    models: dict[str, Any],
    secs: dict[str, float],
    mem: dict[str, int],
    args: argparse.Namespace,
) -> str:
    tokens = args.batch * args.seq
    ref = "transformer =FLOPs"
    lines = [
        f"device {args.device}, batch {args.batch} x seq {args.seq}, vocab {args.vocab}, "
        f"{args.steps} timed steps after {args.warmup} warm-up (median), "
        f"{torch.get_num_threads()} torch threads, torch {torch.__version__}, "
        f"{platform.processor() or platform.machine()}, load average "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}",
        (
            f"morpho: preset {args.preset} network"
            if args.preset
            else f"morpho: d_cell {args.d_cell}, levels {args.levels}, n_heads {args.n_heads}, "
            f"mlp_ratio {args.mlp_ratio}"
        ),
        "",
        "| model | params | fwd MFLOPs/token | gate mean | step (ms) | tokens/s "
        "| vs =FLOPs | peak mem (MiB) | mem vs =FLOPs |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, m in models.items():
        gate = ""
        flops = m.flops_per_token(args.seq)
        if isinstance(m, Network):
            with torch.no_grad():  # the gates on one batch of the timed data's shape
                x = torch.randint(
                    0, args.vocab, (args.batch, args.seq), device=next(m.parameters()).device
                )
                gate = f"{float(m.run(x).stats['gate_mean'].mean()):.3f}"
            flops = m.flops_per_token(args.seq, gate=1.0)  # what the engine computes
        d = m.cfg if isinstance(m, CharTransformer) else None
        label = name if d is None else f"{name} (d {d.d_model}, ff {d.d_ff}, {d.n_layer} layers)"
        lines.append(
            f"| {label} | {m.n_params():,} | {flops / 1e6:.3f} | {gate} | {1e3 * secs[name]:.1f} "
            f"| {tokens / secs[name]:,.0f} | {secs[ref] / secs[name]:.2f}x "
            + (f"| {mem[name] / 2**20:.1f} | {mem[name] / mem[ref]:.2f}x |" if mem else "| — | — |")
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------- inference
@contextmanager
def recording_gates(net: Network) -> Iterator[list[torch.Tensor]]:
    """Collect each level's gate (n, B, T) of the forwards run inside the block."""
    gates: list[torch.Tensor] = []
    forward_level = net.cell.forward_level

    def spy(*args: object, **kwargs: object) -> LevelOutput:
        out = forward_level(*args, **kwargs)  # type: ignore[arg-type]
        gates.append(out.gate.detach())
        return out

    net.cell.forward_level = spy  # type: ignore[method-assign]
    try:
        yield gates
    finally:
        del net.cell.forward_level


def calibrate_gates(net: Network, x: torch.Tensor, open_share: float, threshold: float) -> None:
    """Set each cell's gate bias so a share ``open_share`` of its tokens has ``g ≥ threshold``.

    Upstream biases change downstream inputs, so the per-cell quantile is refit a few times.
    """
    gen = torch.Generator().manual_seed(1)
    d = net.cfg.d_cell
    with torch.no_grad():
        w_pred = net.banks["w_pred"]
        w_pred.copy_(torch.randn(w_pred.shape, generator=gen).to(w_pred) / d**0.5)
        bias = net.banks["gate"][:, 1]
        if open_share <= 0.0 or open_share >= 1.0:
            bias.fill_(CLOSED_GATE_BIAS if open_share <= 0.0 else OPEN_GATE_BIAS)
            return
        target = torch.logit(torch.tensor(threshold))
        for _ in range(4):
            with recording_gates(net) as gates:
                net(x)
            logit = torch.logit(torch.cat(gates).flatten(1).double(), eps=1e-12)  # (N, B*T)
            bias += (target - torch.quantile(logit, 1 - open_share, dim=1)).to(bias)


def measured_open(
    net: Network, x: torch.Tensor, threshold: float | None = None
) -> tuple[float, float]:
    """In a forward on ``x``: the share of (cell, batch, token) with ``g ≥ threshold``
    (default ``gate_skip``), and the mean over levels of the most open (cell, batch) row's
    share of the sequence — what the compact core pads to, compared with
    ``DENSE_CROSSOVER``."""
    threshold = net.cfg.gate_skip if threshold is None else threshold
    with torch.no_grad(), recording_gates(net) as gates:
        net(x)
    is_open = [g.ge(threshold).flatten(0, 1) for g in gates]  # (n*B, T) per level
    share = torch.cat([o.flatten() for o in is_open]).float().mean()
    widest = torch.stack([o.float().mean(1).max() for o in is_open]).mean()
    return float(share), float(widest)


def inference_pair(
    args: argparse.Namespace, open_share: float, device: torch.device
) -> tuple[Network, Network]:
    """(skip, dense): the same calibrated parameters, ``gate_skip`` on and off, in eval mode."""
    skip = build_morpho(args, gate_skip=args.gate_skip).to(device)
    if args.crossover is not None:
        skip.cell.dense_crossover = args.crossover  # type: ignore[attr-defined]
    calibrate_gates(skip, batches(args, device)[0][:, :-1], open_share, args.gate_skip)
    dense = build_morpho(args).to(device)
    dense.load_state_dict(skip.state_dict())
    return skip.eval(), dense.eval()


def time_inference(
    pair: tuple[Network, Network], args: argparse.Namespace, device: torch.device
) -> tuple[float, ...]:
    """Median seconds per forward of (skip, dense), in turn (order alternating) on the same
    batches; the open share, widest row share (:func:`measured_open`) and the largest
    |logit| change, measured on the timed batches."""
    data = batches(args, device)
    with torch.no_grad():
        forwards = [lambda x, net=net: net(x[:, :-1]) for net in pair]  # inputs: all but last
        seconds = in_turn(forwards, data, args, device, alternate=True)
        timed = [x[:, :-1] for x in data[args.warmup :]]
        opened = [measured_open(pair[0], inp) for inp in timed]
        change = max(float((pair[0](inp) - pair[1](inp)).abs().max()) for inp in timed)
    share, widest = (statistics.mean(o) for o in zip(*opened, strict=True))
    return *seconds, share, widest, change


def inference_report(rows: list[tuple[float, ...]], args: argparse.Namespace) -> str:
    tokens = args.batch * args.seq
    lines = [
        f"inference (no_grad, eval): gate_skip {args.gate_skip}, dense crossover "
        f"{DENSE_CROSSOVER if args.crossover is None else args.crossover} of T, "
        f"batch {args.batch} x seq {args.seq}, "
        f"{args.steps} timed forwards each after {args.warmup} warm-up (median)",
        "",
        "| target open | measured open | widest row / T | skip tokens/s | dense tokens/s "
        "| skip / dense | max abs logit change |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for target, skip_s, dense_s, opened, widest, change in rows:
        speeds = f"{tokens / skip_s:,.0f} | {tokens / dense_s:,.0f} | {dense_s / skip_s:.2f}x"
        lines.append(f"| {target:.2f} | {opened:.3f} | {widest:.2f} | {speeds} | {change:.2e} |")
    return "\n".join(lines)


def run_inference(args: argparse.Namespace, device: torch.device) -> list[tuple[float, ...]]:
    """One row per target open share: (target, *:func:`time_inference`)."""
    return [
        (share, *time_inference(inference_pair(args, share, device), args, device))
        for share in args.open
    ]


# ------------------------------------------------------ training, sparse backward
def backward_pair(
    args: argparse.Namespace, open_share: float, device: torch.device
) -> tuple[Network, Network]:
    """(sparse backward, dense): the same calibrated parameters, ``gate_skip_backward``
    on (at ``--gate-skip``) and off, in train mode."""
    skip = build_morpho(args, gate_skip_backward=args.gate_skip).to(device)
    if args.crossover is not None:
        skip.cell.dense_crossover = args.crossover  # type: ignore[attr-defined]
    calibrate_gates(skip, batches(args, device)[0][:, :-1], open_share, args.gate_skip)
    dense = build_morpho(args).to(device)
    dense.load_state_dict(skip.state_dict())
    return skip, dense


def time_backward(
    pair: tuple[Network, Network], args: argparse.Namespace, device: torch.device
) -> tuple[float, ...]:
    """Median seconds per training step of (sparse backward, dense), one step of each in
    turn (order alternating) on the same batches; the open share and widest row of the
    sparse model on the first and the last timed batch. After each (timed) step the
    calibrated parameters are put back (untimed), so that training does not move the open
    share away from its target during the measurement (AdamW's state carries on)."""
    steps = [make_step(m, device, args.vocab) for m in pair]
    calibrated = [{k: v.clone() for k, v in m.state_dict().items()} for m in pair]
    data = batches(args, device)
    first = measured_open(pair[0], data[args.warmup][:, :-1], args.gate_skip)
    seconds = in_turn(
        steps,
        data,
        args,
        device,
        alternate=True,
        after=lambda j: pair[j].load_state_dict(calibrated[j]),
    )
    last = measured_open(pair[0], data[-1][:, :-1], args.gate_skip)
    return *seconds, *first, *last


def backward_report(rows: list[tuple[float, ...]], args: argparse.Namespace) -> str:
    tokens = args.batch * args.seq
    lines = [
        f"training (forward + backward + AdamW) with gate_skip_backward {args.gate_skip} "
        f"against dense, same parameters, batch {args.batch} x seq {args.seq}, {args.steps} "
        f"timed steps each after {args.warmup} warm-up (median)",
        "",
        "| target open | open share (first / last batch) | widest row / T | sparse tokens/s "
        "| dense tokens/s | sparse / dense |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for target, skip_s, dense_s, open0, wide0, open1, wide1 in rows:
        speeds = f"{tokens / skip_s:,.0f} | {tokens / dense_s:,.0f} | {dense_s / skip_s:.2f}x"
        lines.append(
            f"| {target:.2f} | {open0:.3f} / {open1:.3f} | {wide0:.2f} / {wide1:.2f} | {speeds} |"
        )
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per model")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--vocab", type=int, default=96)
    parser.add_argument("--d-cell", type=int, default=32)
    parser.add_argument("--levels", type=int, nargs="+", default=[2, 4, 4, 2])
    parser.add_argument(
        "--preset", default="", help="a run preset's network (e.g. wide); overrides the widths"
    )
    parser.add_argument("--n-heads", type=int, default=2)
    parser.add_argument("--mlp-ratio", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: default)")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory runs")
    parser.add_argument("--json", default="", help="also write the figures here")
    parser.add_argument(
        "--mode",
        choices=["train", "infer", "both", "backward"],
        default="both",
        help="training table, inference table (gate skipping), both; or "
        "training with gate_skip_backward against dense",
    )
    parser.add_argument(
        "--open",
        type=float,
        nargs="+",
        default=[0.0, 0.1, 1.0],
        help="inference: open-gate shares (0: all shut, 1: all open)",
    )
    parser.add_argument(
        "--gate-skip",
        type=float,
        default=0.1,
        help="inference: gates below this skip the geometric core",
    )
    parser.add_argument(
        "--crossover",
        type=float,
        default=None,
        help="inference: the cells' dense_crossover (default morpho.cells."
        "DENSE_CROSSOVER; 1: never fall back to the dense core)",
    )
    parser.add_argument("--_child", default="", help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args._child:
        print(peak_memory_child(args._child, args))
        return
    device = torch.device(args.device)
    figures: dict[str, object] = {"args": vars(args)}
    if args.mode in ("train", "both"):
        models = build_models(args)
        secs = time_side_by_side(models, args, device)
        mem = {} if args.no_memory else {name: peak_memory(name, args) for name in models}
        print(report(models, secs, mem, args))
        figures.update(seconds_per_step=secs, peak_bytes=mem)
    if args.mode in ("infer", "both"):
        rows = run_inference(args, device)
        print(("\n" if args.mode == "both" else "") + inference_report(rows, args))
        keys = ("target_open", "skip_s", "dense_s", "open", "widest_row", "max_logit_change")
        figures["inference"] = [dict(zip(keys, row, strict=True)) for row in rows]
    if args.mode == "backward":
        rows = [
            (share, *time_backward(backward_pair(args, share, device), args, device))
            for share in args.open
        ]
        print(backward_report(rows, args))
        fields = (
            "target_open",
            "sparse_s",
            "dense_s",
            "open_first",
            "widest_first",
            "open_last",
            "widest_last",
        )
        figures["backward"] = [dict(zip(fields, row, strict=True)) for row in rows]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f)


if __name__ == "__main__":
    main()
