"""``morpho stream``: a driver over a task stream × continual-learning methods × seeds.

    cfg = StreamConfig(stream="split-digits", scenario="class", methods=("analytic", "naive"))
    results = run_stream(cfg, Path("runs/stream"))

Every gradient method trains on the one :class:`~morpho.trainer.Trainer` of ``morpho
grow``, built from the method's parts (:mod:`morpho.sims.cl_methods`: a task wrapper, loss
terms, callbacks, the growth scheduler), and writes one run directory per seed under
``runs/<method>-seed<k>/`` that ``morpho plot`` and ``morpho render`` read. The closed-form
methods (``analytic``, ``random-features``) are solved here, from one pass over each
task's training split (:mod:`morpho.sims.analytic`): no optimizer step.

The protocol is the same for every method: each task gets the same optimizer steps
(``budget``: ``short`` = ``epochs`` passes over the mean task, ``converged`` = 500 steps;
``joint`` always the converged budget, ``joint-short`` the stream's), each step
``train.batch_size`` examples (replay's rehearsed ones inside it); a validation split
carved from every task's training split (``val_fraction``, stratified, fixed) is where
``tune`` chooses each method's hyperparameters (its grid, seed 0); the test split is only
scored. ``replay-floats`` is replay with as many examples a class as fit in the floats the
analytic learner keeps.

The stream is a built-in one (:data:`morpho.sims.streams.STREAMS`) or any registered
``morpho grow`` task with the :class:`~morpho.sims.stream_task.TaskStream` attributes.
The output folder holds ``config.toml`` (``morpho stream --config`` runs it again),
``results.json`` (each method's matrix R, metrics, params, memory, chosen hyperparameters,
per seed and mean ± std, and its paired difference against replay), ``heatmap_<method>.png``,
``accuracy_per_task.png`` and ``runs/``.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from morpho.callbacks import Callback
from morpho.config import RunConfig
from morpho.files import atomic_write, dump_toml
from morpho.growth.config import GrowthConfig
from morpho.growth.scheduler import Scheduler
from morpho.network import Network, NetworkConfig
from morpho.rundir import RunDir
from morpho.sims.analytic import AnalyticLearner, RandomFeaturesLearner, sum_floats
from morpho.sims.cl_methods import CL_METHODS, CLMethod, MethodContext
from morpho.sims.cl_metrics import cl_summary
from morpho.sims.stream_matrix import MatrixRecorder, score_tasks
from morpho.sims.stream_plots import plot_matrix, plot_task_curves
from morpho.sims.stream_results import (
    _plain,
    add_paired_differences,
    aggregate,
    format_table,
    machine,
    validation_split,
)
from morpho.sims.stream_task import StreamOnTrainer, steps_for
from morpho.sims.streams import STREAMS, build_stream
from morpho.tasks import TASKS, task_overrides
from morpho.trainer import TrainConfig, Trainer

BUDGET_STEPS = {"short": 0, "converged": 500}  # optimizer steps a task (0: ``epochs`` passes)


@dataclass(frozen=True)
class LearnConfig:
    """The stream's budget and the methods' own settings (``[learn]``)."""

    epochs: int = 4  # short budget: passes over the mean task's training split
    steps: int = 0  # optimizer steps a task, the same for every method (0: the budget's)
    joint_steps: int = 500  # ``joint``: optimizer steps a task (the converged budget)
    rehearsal_share: float = 0.5  # replay: share of a batch drawn from the memory
    memory: int = 10  # replay: stored examples a class (language: windows a domain)
    ewc_lambda: float = 1000.0  # EWC penalty weight
    si_c: float = 1.0  # SI penalty weight
    si_xi: float = 0.1  # SI damping of the parameter change
    lwf_alpha: float = 1.0  # LwF distillation weight
    lwf_temperature: float = 2.0  # LwF softmax temperature
    ridge: float = 1e-4  # closed-form heads: ridge, relative to the Gram's mean diagonal
    expand: int = 0  # analytic: width of a fixed random ReLU expansion (0: none)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.ridge) and self.ridge > 0) or self.expand < 0:
            raise ValueError(
                f"expected learn.ridge > 0 (finite) and learn.expand >= 0; got "
                f"{self.ridge}, {self.expand}"
            )


def _stream_train() -> TrainConfig:
    # Adam at a constant rate, no clipping or gate penalty: the continual-learning baselines'
    # optimizer, on the one trainer (``steps`` is set from the budget)
    return TrainConfig(
        batch_size=32, lr=2e-3, warmup=0, min_lr_ratio=1.0, weight_decay=0.0, grad_clip=0.0,
        gate_l1=0.0, eval_every=10**9, log_every=5,
    )  # fmt: skip


MAX_SEEDS = 1_000  # seeds a stream runs per method
MAX_COUNT = 10**9  # tasks, epochs, stored examples, steps, kept examples


@dataclass(frozen=True)
class StreamConfig:
    """One ``morpho stream`` invocation."""

    stream: str = "split-digits"  # a built-in stream (STREAMS) or a registered task stream
    scenario: str = "class"  # task | domain | class
    tasks: int = 0  # permuted-digits: number of permutations (0: 10)
    methods: tuple[str, ...] = ("analytic", "naive")  # registered in CL_METHODS
    seeds: int = 1  # seeds per method (0, 1, …)
    data: tuple[str, ...] = ()  # lang-domains: extra text files, one domain each
    max_train: int = 0  # training examples kept per task (0: all; quick runs)
    budget: str = "short"  # short | converged: optimizer steps a task (BUDGET_STEPS)
    val_fraction: float = 0.2  # share of each class of each task's train kept for validation
    tune: bool = False  # choose each method's hyperparameters on the validation split
    learn: LearnConfig = field(default_factory=LearnConfig)
    network: NetworkConfig = field(
        default_factory=lambda: NetworkConfig(d_cell=16, level_sizes=(2, 3, 3, 2))
    )
    train: TrainConfig = field(default_factory=_stream_train)  # the trainer's [train]
    growth: GrowthConfig = field(  # neurogenesis: the scheduler and its rules
        default_factory=lambda: GrowthConfig(rules=("task_change",), until=1.0, max_cells=40)
    )

    def __post_init__(self) -> None:
        names = CL_METHODS.names()
        for m in self.methods:
            CL_METHODS.get(m)  # ValueError listing the registered methods
        if not self.methods:
            raise ValueError(f"no methods given; expected some of: {', '.join(names)}")
        if self.seeds < 1 or self.learn.epochs < 1 or self.learn.memory < 0:
            raise ValueError(
                f"expected seeds >= 1, epochs >= 1, memory >= 0; got {self.seeds}, "
                f"{self.learn.epochs}, {self.learn.memory}"
            )
        bounds = {  # counts that size a loop or a buffer: beyond these a run never ends
            "seeds": (self.seeds, MAX_SEEDS),
            "tasks": (self.tasks, MAX_COUNT),
            "max_train": (self.max_train, MAX_COUNT),
            "learn.epochs": (self.learn.epochs, MAX_COUNT),
            "learn.memory": (self.learn.memory, MAX_COUNT),
            "learn.steps": (self.learn.steps, MAX_COUNT),
        }
        for name, (value, most) in bounds.items():
            if not 0 <= value <= most:
                raise ValueError(f"{name} must be in [0, {most}]; got {value}")
        if self.budget not in BUDGET_STEPS:
            raise ValueError(
                f"unknown budget {self.budget!r}; expected one of: {', '.join(BUDGET_STEPS)}"
            )
        if not 0.0 <= self.val_fraction < 1.0 or (self.tune and not self.val_fraction):
            raise ValueError(
                f"val_fraction must be in [0, 1) and > 0 to tune; got {self.val_fraction}"
            )
        if self.learn.steps < 0 or not 0.0 <= self.learn.rehearsal_share < 1.0:
            raise ValueError(
                f"expected learn.steps >= 0 and learn.rehearsal_share in [0, 1); got "
                f"{self.learn.steps}, {self.learn.rehearsal_share}"
            )


def build_task_stream(cfg: StreamConfig) -> Any:
    """The stream ``cfg`` names as a trainer task: a built-in stream (its training splits
    carved into fit and validation parts), or a registered task with the TaskStream
    attributes."""
    if cfg.stream not in STREAMS:
        if cfg.stream not in TASKS:
            raise ValueError(
                f"unknown stream {cfg.stream!r}; expected one of: {', '.join(STREAMS)} "
                "or a registered stream task"
            )
        task = TASKS.get(cfg.stream)()
        missing = [a for a in ("n_tasks", "steps_per_task", "task_batches") if not hasattr(task, a)]
        if missing:
            raise ValueError(
                f"task {cfg.stream!r} is not a task stream (it lacks {', '.join(missing)}); "
                f"expected one of: {', '.join(STREAMS)} or a registered stream task"
            )
        return task
    stream = build_stream(cfg.stream, cfg.scenario, cfg.tasks, cfg.data, max_train=cfg.max_train)
    fit, val = validation_split(stream, cfg.val_fraction)
    learn = cfg.learn
    steps = learn.steps or BUDGET_STEPS[cfg.budget]
    steps = steps or steps_for(fit, learn.epochs, cfg.train.batch_size)
    return StreamOnTrainer(fit, val, steps)


def network_config(cfg: StreamConfig, task: Any, seed: int) -> NetworkConfig:
    """The backbone for ``task``: the ``[network]`` table with the task's shape and seed."""
    net = RunConfig(network=cfg.network).merged(task_overrides(task)).network
    return replace(net, seed=seed)


# ------------------------------------------------------------------------ methods
def run_method(
    cfg: StreamConfig,
    name: str,
    task: Any,
    seed: int,
    split: str = "test",
    out: Path | None = None,
    callbacks: tuple[Callback, ...] = (),
) -> dict[str, Any]:
    """One method, one seed, through the stream: the matrix, metrics, params and memory."""
    method = CL_METHODS.get(name)
    t0 = time.perf_counter()
    if method.closed_form:
        result = _closed_form(cfg, method, task, seed, split)
    else:
        result = _on_trainer(cfg, method, task, seed, split, out, callbacks)
    matrix, untrained = result.pop("matrix"), result.pop("untrained")
    if method.at_once:  # trained once at the end (joint): every row is the final model
        matrix = matrix * task.n_tasks
        result["params"] *= task.n_tasks
        result["cells"] *= task.n_tasks
    summary = cl_summary(matrix, untrained, task.kind == "classify")
    if method.at_once:
        summary["fwt"] = None
    return {
        **summary,
        "matrix": matrix,
        "untrained": untrained,
        **result,
        "seconds": time.perf_counter() - t0,
    }


def method_context(cfg: StreamConfig, name: str, task: Any, seed: int) -> MethodContext:
    """The parts' context (replay-floats: with its equal-floats memory)."""
    memory = equal_float_memory(cfg, task) if name == "replay-floats" else 0
    return MethodContext(task, cfg.learn, seed, memory)


def _on_trainer(
    cfg: StreamConfig,
    method: CLMethod,
    task: Any,
    seed: int,
    split: str,
    out: Path | None,
    callbacks: tuple[Callback, ...],
) -> dict[str, Any]:
    ctx = method_context(cfg, method.name, task, seed)
    if method.steps_per_task is not None:
        task.steps_per_task = method.steps_per_task(ctx)
    seen = method.wrap(ctx) if method.wrap else task
    parts = method.parts(ctx) if method.parts else []
    steps = task.steps_per_task * task.n_tasks
    train = replace(cfg.train, steps=steps, seed=seed)
    torch.manual_seed(seed)
    net = Network(network_config(cfg, task, seed))
    recorder = MatrixRecorder(task, split, ctx, once=method.at_once)
    growth = replace(cfg.growth, seed=seed)
    run = None
    if out is not None:
        run = RunDir(out, overwrite=True)
        config = RunConfig(task=cfg.stream, network=net.cfg, train=train, growth=growth)
        run.create(dump_toml({**config.to_dict(), "stream": plain_config(cfg)}))
    callbacks_all = [recorder, *[p for p in parts if isinstance(p, Callback)], *callbacks]
    if method.growth:
        callbacks_all.insert(0, Scheduler(growth))
    terms = [p for p in parts if hasattr(p, "loss")]
    trainer = Trainer(net, seen, train, run=run, callbacks=callbacks_all, terms=terms)
    try:
        trainer.fit()
    finally:
        if run is not None:
            run.release()
    state = sum(p.floats() for p in parts if hasattr(p, "floats"))
    state += sum(p.numel() for q in parts if getattr(q, "old", None) for p in q.old.parameters())
    return {
        "matrix": recorder.rows,
        "untrained": recorder.untrained,
        "params": recorder.params,
        "cells": recorder.cells,
        "steps": trainer.step,
        "memory_floats": seen.memory_floats() if hasattr(seen, "memory_floats") else 0,
        "state_floats": state,
    }


def closed_form_learner(cfg: StreamConfig, name: str, task: Any, seed: int) -> AnalyticLearner:
    """The analytic (or random-features) learner of ``name`` on ``task``."""
    net = network_config(cfg, task, seed)
    if name == "random-features":
        return RandomFeaturesLearner(task, net, cfg.learn.ridge, seed, expand=cfg.learn.expand)
    cell_readout = name != "analytic-no-cell-readout"
    expand = cfg.learn.expand if cell_readout else 0
    return AnalyticLearner(task, net, cfg.learn.ridge, seed, expand, cell_readout)


def _closed_form(
    cfg: StreamConfig, method: CLMethod, task: Any, seed: int, split: str
) -> dict[str, Any]:
    if task.kind != "classify":
        usable = ", ".join(m for m in CL_METHODS.names() if not CL_METHODS.get(m).closed_form)
        raise ValueError(
            f"method {method.name!r} solves image heads in closed form; {task.name} is a "
            f"language stream: expected one of: {usable}"
        )
    learner = closed_form_learner(cfg, method.name, task, seed)
    untrained = score_tasks(learner.logits, task, split)
    matrix = []
    for t in range(task.n_tasks):
        learner.fit_task(t)
        matrix.append(score_tasks(learner.logits, task, split))
    n = task.n_tasks
    cells = int(learner.net.tissue.num_nodes) if method.name != "random-features" else 0
    return {
        "matrix": matrix,
        "untrained": untrained,
        "params": [learner.n_params()] * n,
        "cells": [cells] * n,
        "steps": 0,
        "memory_floats": learner.memory_floats(),
        "state_floats": 0,
    }


def kept_floats(cfg: StreamConfig, task: Any) -> int:
    """Floats the analytic learner keeps on ``task`` (0 with a task id: sums dropped)."""
    if getattr(task, "task_id_given", False):
        return 0
    dim = closed_form_learner(cfg, "analytic", task, 0).ridge_weight.shape[0]
    return sum_floats(dim, task.vocab_size)


def equal_float_memory(cfg: StreamConfig, task: Any) -> int:
    """Examples a class that fit in the floats the analytic learner keeps a class."""
    if task.kind != "classify":
        raise ValueError(
            f"replay-floats matches the analytic learner's floats; expected an image stream, "
            f"got {task.name}"
        )
    n_classes = len({c for t in range(task.n_tasks) for c in task.task_columns(t)})
    pixels = task.task_batches(0, "train", 1)[0][0][0].numel()
    return max(1, kept_floats(cfg, task) // n_classes // pixels)


# ------------------------------------------------------------------------ the driver
def run_stream(cfg: StreamConfig, out: Path, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every method of ``cfg`` for every seed; write and return the results. With
    ``cfg.tune``, each method's hyperparameters are first chosen on the validation split."""
    if cfg.train.device == "cpu":
        torch.set_num_threads(1)  # tiny models are overhead-bound; avoid oversubscribing cores
    task = build_task_stream(cfg)
    out.mkdir(parents=True, exist_ok=True)
    config = dump_toml(plain_config(cfg))  # what ``morpho stream --config`` reads back
    atomic_write(out / "config.toml", lambda f: f.write(config.encode()))
    results: dict[str, Any] = {
        "stream": cfg.stream,
        "scenario": cfg.scenario,
        "tasks": task.task_names(),
        "metric": "accuracy %" if task.kind == "classify" else "bits per token",
        "config": plain_config(cfg),
        "machine": machine(),
        "methods": {},
    }
    for name in cfg.methods:
        chosen, trials = tune_method(cfg, name, echo) if cfg.tune else ({}, [])
        tuned = with_overrides(cfg, chosen)
        per_seed = []
        for seed in range(cfg.seeds):
            run = out / "runs" / f"{name}-seed{seed}"
            r = run_method(tuned, name, build_task_stream(tuned), seed, "test", run)
            per_seed.append(r)
            echo(
                f"  {name} seed {seed}: avg {r['avg_accuracy']:.2f}, bwt {r['bwt']:.2f}, "
                f"{r['cells'][-1]} cells, {r['steps']} steps, {r['seconds']:.1f}s"
            )
        summary = aggregate(per_seed)
        summary["hyperparameters"] = {"tuned": cfg.tune, "chosen": chosen, "trials": trials}
        results["methods"][name] = summary
        plot_matrix(summary["matrix"], task, name, out / f"heatmap_{name}.png")
    add_paired_differences(results["methods"], task.kind == "classify")
    plot_task_curves(results, task, out / "accuracy_per_task.png")
    text = json.dumps(results, indent=2) + "\n"
    atomic_write(out / "results.json", lambda f: f.write(text.encode()))
    echo(format_table(results))
    return results


def plain_config(cfg: StreamConfig) -> dict[str, Any]:
    """``cfg`` as plain tables (the growth table resolved as ``morpho grow`` writes it)."""
    return {**_plain(asdict(cfg)), "growth": cfg.growth.to_dict()}


def with_overrides(cfg: StreamConfig, chosen: dict[str, Any]) -> StreamConfig:
    """``cfg`` with ``{"learn.x": v, "train.y": w}`` put in."""
    parts: dict[str, dict[str, Any]] = {}
    for key, value in chosen.items():
        section, name = key.split(".", 1)
        parts.setdefault(section, {})[name] = value
    return replace(cfg, **{s: replace(getattr(cfg, s), **v) for s, v in parts.items()})


def tune_method(
    cfg: StreamConfig, name: str, echo: Callable[[str], None] = print
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The point of ``name``'s grid with the best final average on the validation split
    (seed 0; the test split is never read), and every point's score."""
    grid = CL_METHODS.get(name).grid
    keys = sorted(grid)
    trials: list[dict[str, Any]] = []
    for values in itertools.product(*(grid[k] for k in keys)):
        point = dict(zip(keys, values, strict=True))
        tuned = with_overrides(cfg, point)
        r = run_method(tuned, name, build_task_stream(tuned), 0, "val")
        trials.append({"point": point, "val_avg": r["avg_accuracy"]})
    if not trials:
        return {}, []
    sign = 1.0 if build_task_stream(cfg).kind == "classify" else -1.0
    best = max(trials, key=lambda tr: sign * tr["val_avg"])  # a tie: the first point
    echo(f"  {name}: chose {best['point']} on validation (avg {best['val_avg']:.2f})")
    return best["point"], trials
