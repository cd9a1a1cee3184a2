"""Run methods over a continual-learning stream and write ``results.json``, a table and heatmaps.

    cfg = StreamConfig(stream="split-digits", scenario="class", methods=("analytic", "naive"))
    results = run_stream(cfg, Path("runs/stream"))

The protocol is the same for every method: each task gets the same number of optimizer
steps (``budget``: ``short`` = ``epochs`` passes over the task, ``converged`` = 500 steps),
each step the same number of examples (rehearsed ones and morpho's sleep count inside the
budget; the closed-form methods, ``analytic`` and ``random-features``, take no optimizer
step at all, only one forward pass over each task's training split), and a validation
split carved from every task's training split (``val_fraction``, stratified, fixed) is
where hyperparameters are chosen with ``tune`` (the grid of each method, :data:`GRIDS`,
on seed 0); the test split is only scored. ``replay-floats`` is replay with as many
examples a class as fit in the floats the analytic learner keeps a class (its heads'
running sums; on a language stream the gradient learner's Gaussians). ``joint`` is
trained once on every task together for the converged budget of the whole stream (the
upper bound), ``joint-short`` for the stream's own budget.

The output folder holds ``config.toml`` (the resolved config: ``morpho stream --config
DIR/config.toml`` runs it again), ``results.json`` (``{"methods": {name: {"avg_accuracy", "bwt",
"fwt", "forgetting", "params", "cells", "matrix", "vs_replay", "hyperparameters", …}}}``,
means over seeds with ``*_std``, every seed under ``"seeds"``, and the paired difference of
each seed's average accuracy against replay's with the same seed), ``heatmap_<method>.png``
(the mean matrix R) and, for morpho's methods, a run directory per seed under ``runs/``
(growth events in ``morpho grow``'s schema; snapshots whose ``task`` field colours cells by
the task they were born in: ``morpho render RUN --color task``; ``morpho plot RUN``).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from morpho.config import dump_toml
from morpho.rundir import RunDir
from morpho.sims.analytic import AnalyticLearner, RandomFeaturesLearner, kept_floats
from morpho.sims.cl_metrics import cl_summary
from morpho.sims.continual import (
    EWC,
    SI,
    Joint,
    LearnConfig,
    Learner,
    LwF,
    Replay,
    Separate,
)
from morpho.sims.morpho_cl import (
    ABLATIONS,
    ClassGaussian,
    MorphoCLConfig,
    MorphoLearner,
    parent_method,
)
from morpho.sims.stream_plots import plot_matrix, plot_task_curves
from morpho.sims.streams import Stream, StreamTask, build_stream
from morpho.tissue import _atomic_write

BASELINES: dict[str, type[Learner]] = {
    "naive": Learner,
    "ewc": EWC,
    "si": SI,
    "lwf": LwF,
    "replay": Replay,
    "replay-floats": Replay,  # memory: the examples that fit in morpho's floats a class
    "joint": Joint,  # at the converged budget (learn.joint_steps), whatever the stream's
    "joint-short": Joint,  # at the stream's budget
    "separate": Separate,
}
CLOSED_FORM = {"random-features": RandomFeaturesLearner}  # beside the analytic ablations
METHODS = (*ABLATIONS, *CLOSED_FORM, *BASELINES)
BUDGET_STEPS = {"short": 0, "converged": 500}  # optimizer steps a task (0: ``epochs`` passes)
LRS = (1e-3, 2e-3, 4e-3)
# morpho's analytic heads: the ridge, relative to the Gram's diagonal; strongest first, so
# that a tie on validation goes to the more regularised head
RIDGES = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
# each method's hyperparameter grid for ``tune``, as {"section.field": values}
GRIDS: dict[str, dict[str, tuple[float, ...]]] = {
    "naive": {"learn.lr": LRS},
    "ewc": {"learn.ewc_lambda": (10.0, 100.0, 1000.0, 10000.0)},
    "si": {"learn.si_c": (0.1, 1.0, 10.0)},
    "lwf": {"learn.lwf_alpha": (0.5, 1.0, 2.0, 4.0)},
    "replay": {"learn.lr": LRS},
    "replay-floats": {"learn.lr": LRS},
    "joint": {"learn.lr": LRS},
    "joint-short": {"learn.lr": LRS},
    "separate": {"learn.lr": LRS},
    "random-features": {"morpho.ridge": RIDGES},
    # an ablation takes its parent's choice when the parent is tuned in the same run
    **{
        n: (
            {
                "learn.lr": LRS,
                "morpho.consolidation": (1.0, 3.0),
                "morpho.feature_distill": (0.1, 1.0),
            }
            if parent_method(n) == "morpho-gradient"
            else {"morpho.ridge": RIDGES}
        )
        for n in ABLATIONS
    },
}


@dataclass(frozen=True)
class StreamConfig:
    """One ``morpho stream`` invocation."""

    stream: str = "split-digits"  # see morpho.sims.streams.STREAMS
    scenario: str = "class"  # task | domain | class
    tasks: int = 0  # permuted-digits: number of permutations (0: 10)
    methods: tuple[str, ...] = ("analytic", "naive")  # see METHODS
    seeds: int = 1  # seeds per method (0, 1, …)
    data: tuple[str, ...] = ()  # lang-domains: extra text files, one domain each
    max_train: int = 0  # training examples kept per task (0: all; quick runs)
    budget: str = "short"  # short | converged: optimizer steps a task (BUDGET_STEPS)
    val_fraction: float = 0.2  # share of each class of each task's train kept for validation
    tune: bool = False  # choose each method's hyperparameters on the validation split
    learn: LearnConfig = field(default_factory=LearnConfig)
    morpho: MorphoCLConfig = field(default_factory=MorphoCLConfig)

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ValueError(
                f"unknown method {unknown[0]!r}; expected one of: {', '.join(METHODS)}"
            )
        if not self.methods:
            raise ValueError(f"no methods given; expected some of: {', '.join(METHODS)}")
        if self.seeds < 1 or self.learn.epochs < 1 or self.learn.memory < 0:
            raise ValueError(
                f"expected seeds >= 1, epochs >= 1, memory >= 0; got {self.seeds}, "
                f"{self.learn.epochs}, {self.learn.memory}"
            )
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

    @property
    def resolved_learn(self) -> LearnConfig:
        """``learn`` with the budget's steps a task (explicit ``learn.steps`` wins)."""
        return replace(self.learn, steps=self.learn.steps or BUDGET_STEPS[self.budget])


def make_learner(
    name: str, stream: Stream, learn: LearnConfig, cl: MorphoCLConfig, run: RunDir | None = None
) -> Learner:
    """The learner of a method name (``ValueError`` listing the names otherwise, or naming
    a closed-form method asked to run on a language stream)."""
    check_method_fits(name, stream)
    if name in ABLATIONS:
        cl = replace(cl, **ABLATIONS[name])
        if cl.analytic:
            return AnalyticLearner(stream, learn, cl, run)
        return MorphoLearner(stream, learn, cl, run)
    if name in CLOSED_FORM:
        return CLOSED_FORM[name](stream, learn, cl, run)
    if name == "replay-floats":
        return Replay(stream, replace(learn, memory=equal_float_memory(stream, learn, cl)))
    if name == "joint":
        return Joint(stream, replace(learn, steps=learn.joint_steps))
    if name in BASELINES:
        return BASELINES[name](stream, learn)
    raise ValueError(f"unknown method {name!r}; expected one of: {', '.join(METHODS)}")


def is_closed_form(name: str) -> bool:
    """Is ``name`` a method whose heads are solved in closed form (no optimizer step)?"""
    return name in CLOSED_FORM or bool(ABLATIONS.get(name, {}).get("analytic"))


def check_method_fits(name: str, stream: Stream) -> None:
    """``ValueError`` for a closed-form method on a language stream (its heads read image
    features), naming the methods that do run there."""
    if stream.kind == "classify" or not is_closed_form(name):
        return
    usable = ", ".join(m for m in METHODS if not is_closed_form(m))
    raise ValueError(
        f"method {name!r} solves image heads in closed form; {stream.name} is a language "
        f"stream: expected one of: {usable}"
    )


def equal_float_memory(stream: Stream, learn: LearnConfig, cl: MorphoCLConfig) -> int:
    """Examples a class that fit in the floats morpho keeps a class: a share of the analytic
    heads' running sums, or the gradient learner's Gaussian of one class."""
    if cl.analytic and stream.kind == "classify":
        floats = kept_floats(stream, learn, cl)
        n_classes = len({(k.head, c) for k in stream.tasks for c in k.classes})
        per_class = floats // n_classes
    else:
        d = learn.d_cell
        per_class = ClassGaussian(torch.zeros(d), torch.zeros(d, d), 0, 0).floats()
    return max(1, per_class // stream.tasks[0].x_train[0].numel())


def validation_split(stream: Stream, fraction: float) -> tuple[Stream, Stream]:
    """``(fit, val)``: ``fit`` trains on each task's training split less a stratified,
    fixed ``fraction`` of each class (the test split as before); ``val`` has the same
    training splits and that carved part in place of the test split."""
    if not fraction:
        return stream, stream
    fits, vals = [], []
    for t, task in enumerate(stream.tasks):
        keep, held = _carve(task, fraction, t)
        fit = replace(task, x_train=task.x_train[keep], y_train=task.y_train[keep])
        fits.append(fit)
        vals.append(replace(fit, x_test=task.x_train[held], y_test=task.y_train[held]))
    return replace(stream, tasks=tuple(fits)), replace(stream, tasks=tuple(vals))


def _carve(task: StreamTask, fraction: float, t: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices kept for training and held out, per class (text: per task), fixed by ``t``."""
    gen = torch.Generator().manual_seed(1000 + t)
    labels = task.y_train
    held = []
    for c in labels.unique().tolist():
        rows = (labels == c).nonzero()[:, 0]
        rows = rows[torch.randperm(len(rows), generator=gen)]
        held.append(rows[: math.ceil(fraction * len(rows)) if len(rows) > 1 else 0])
    out = torch.zeros(len(labels), dtype=torch.bool)
    out[torch.cat(held)] = True
    return (~out).nonzero()[:, 0], out.nonzero()[:, 0]


def run_method(learner: Learner, stream: Stream) -> dict[str, Any]:
    """Train ``learner`` task by task; the matrix, metrics, params and cells after each task."""
    t0 = time.perf_counter()
    baseline = [learner.score(k) for k in stream.tasks]
    matrix, params, cells = [], [], []
    for t, task in enumerate(stream.tasks):
        learner.fit_task(t, task)
        matrix.append([learner.score(k) for k in stream.tasks])
        params.append(learner.n_params())
        cells.append(learner.n_cells())
    if isinstance(learner, Joint):  # trained once at the end: every row is the final model
        matrix = [matrix[-1]] * len(matrix)
        params, cells = [params[-1]] * len(params), [cells[-1]] * len(cells)
    out = cl_summary(matrix, baseline, stream.higher_is_better)
    if isinstance(learner, Joint):
        out["fwt"] = None
    return {
        **out,
        "matrix": matrix,
        "untrained": baseline,
        "params": params,
        "cells": cells,
        "steps": learner.step,
        "memory_floats": learner.memory_floats(),
        "state_floats": learner.state_floats(),
        "seconds": time.perf_counter() - t0,
    }


def aggregate(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """Means (and ``*_std``, sample std) of the scalar metrics; mean matrix, params, cells."""
    out: dict[str, Any] = {}
    for key in ("avg_accuracy", "bwt", "fwt", "forgetting", "seconds"):
        if any(r[key] is None for r in per_seed):
            out[key] = out[f"{key}_std"] = None
            continue
        values = np.array([r[key] for r in per_seed], dtype=float)
        out[key] = float(values.mean())
        out[f"{key}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    for key in ("matrix", "params", "cells", "untrained"):
        out[key] = np.mean([r[key] for r in per_seed], axis=0).tolist()
    for key in ("steps", "memory_floats", "state_floats"):  # counted by morpho's runner
        if all(key in r for r in per_seed):
            out[key] = float(np.mean([r[key] for r in per_seed]))
    out["seeds"] = per_seed
    return out


def run_stream(
    cfg: StreamConfig, out: Path, echo: Callable[[str], None] = print, stream: Stream | None = None
) -> dict[str, Any]:
    """Run every method of ``cfg`` for every seed; write and return the results.

    ``stream`` is the stream ``cfg`` names, if the caller has built it already. With
    ``cfg.tune``, each method's hyperparameters are first chosen on the validation split.
    """
    stream = stream or build_stream(
        cfg.stream, cfg.scenario, cfg.tasks, cfg.data, max_train=cfg.max_train
    )
    fit, val = validation_split(stream, cfg.val_fraction)
    if cfg.learn.device == "cpu":
        torch.set_num_threads(1)  # tiny models are overhead-bound; avoid oversubscribing cores
    out.mkdir(parents=True, exist_ok=True)
    config = dump_toml(_plain(asdict(cfg)))  # what ``morpho stream --config`` reads back
    _atomic_write(out / "config.toml", lambda f: f.write(config.encode()))
    results: dict[str, Any] = {
        "stream": cfg.stream,
        "scenario": cfg.scenario,
        "tasks": [k.name for k in stream.tasks],
        "metric": "accuracy %" if stream.higher_is_better else "bits per character",
        "config": _plain(asdict(cfg)),
        "machine": machine(),
        "methods": {},
    }
    for name in cfg.methods:
        trials: list[dict[str, Any]] = []
        if not cfg.tune:
            chosen = {}
        elif (
            name in ABLATIONS and (parent := parent_method(name)) != name and parent in cfg.methods
        ):
            chosen = _tuned_parent(cfg, parent, val, results, echo)
        else:
            chosen, trials = tune_method(cfg, name, val, echo)
        learn, cl = with_overrides(cfg.resolved_learn, cfg.morpho, chosen)
        per_seed = []
        for seed in range(cfg.seeds):
            run = _run_dir(out, name, seed, cfg) if name in ABLATIONS else None
            learner = make_learner(name, fit, replace(learn, seed=seed), cl, run)
            per_seed.append(run_method(learner, fit))
            r = per_seed[-1]
            echo(
                f"  {name} seed {seed}: avg {r['avg_accuracy']:.2f}, bwt {r['bwt']:.2f}, "
                f"{r['cells'][-1]} cells, {r['steps']} steps, {r['seconds']:.1f}s"
            )
        summary = aggregate(per_seed)
        summary["hyperparameters"] = {"tuned": cfg.tune, "chosen": chosen, "trials": trials}
        results["methods"][name] = summary
        plot_matrix(summary["matrix"], stream, name, out / f"heatmap_{name}.png")
    add_paired_differences(results["methods"], stream.higher_is_better)
    plot_task_curves(results, stream, out / "accuracy_per_task.png")
    text = json.dumps(results, indent=2) + "\n"
    _atomic_write(out / "results.json", lambda f: f.write(text.encode()))
    echo(format_table(results))
    return results


def with_overrides(
    learn: LearnConfig, cl: MorphoCLConfig, chosen: dict[str, Any]
) -> tuple[LearnConfig, MorphoCLConfig]:
    """``learn`` and ``cl`` with ``{"learn.x": v, "morpho.y": w}`` put in."""
    pick = lambda part: {k.split(".", 1)[1]: v for k, v in chosen.items() if k.startswith(part)}  # noqa: E731
    return replace(learn, **pick("learn.")), replace(cl, **pick("morpho."))


def tune_method(
    cfg: StreamConfig, name: str, val: Stream, echo: Callable[[str], None] = print
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The point of ``name``'s grid with the best final average on the validation split
    (seed 0; the test split is never read), and every point's score."""
    grid = GRIDS.get(name, {})
    keys = sorted(grid)
    trials: list[dict[str, Any]] = []
    for values in itertools.product(*(grid[k] for k in keys)):
        point = dict(zip(keys, values, strict=True))
        learn, cl = with_overrides(cfg.resolved_learn, cfg.morpho, point)
        r = run_method(make_learner(name, val, replace(learn, seed=0), cl), val)
        trials.append({"point": point, "val_avg": r["avg_accuracy"]})
    if not trials:
        return {}, []
    sign = 1.0 if val.higher_is_better else -1.0
    best = max(trials, key=lambda tr: sign * tr["val_avg"])
    echo(f"  {name}: chose {best['point']} on validation (avg {best['val_avg']:.2f})")
    return best["point"], trials


def _tuned_parent(
    cfg: StreamConfig,
    parent: str,
    val: Stream,
    results: dict[str, Any],
    echo: Callable[[str], None],
) -> dict[str, Any]:
    """The ``parent`` method's chosen point (tuned now if it comes later in
    ``cfg.methods``): an ablation removes one part of the tuned method."""
    done = results["methods"].get(parent)
    if done is not None:
        return dict(done["hyperparameters"]["chosen"])
    return tune_method(cfg, parent, val, echo)[0]


def add_paired_differences(methods: dict[str, dict[str, Any]], higher_is_better: bool) -> None:
    """Each method's ``vs_replay``: the per-seed differences of its average against replay's
    with the same seed, their mean and sample std (None without replay or its seeds)."""
    ref = methods.get("replay")
    for name, r in methods.items():
        n = min(len(r["seeds"]), len(ref["seeds"])) if ref else 0
        if ref is None or name == "replay" or n == 0:
            r["vs_replay"] = None
            continue
        diffs = np.array(
            [r["seeds"][i]["avg_accuracy"] - ref["seeds"][i]["avg_accuracy"] for i in range(n)]
        )
        std = float(diffs.std(ddof=1)) if n > 1 else 0.0
        r["vs_replay"] = {"mean": float(diffs.mean()), "std": std, "per_seed": diffs.tolist()}


def _run_dir(out: Path, name: str, seed: int, cfg: StreamConfig) -> RunDir:
    run = RunDir(out / "runs" / f"{name}-seed{seed}", overwrite=True)
    run.create(dump_toml({"stream": _plain(asdict(cfg))}))
    return run


def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def format_table(results: dict[str, Any]) -> str:
    """The methods as a Markdown table of mean ± std over seeds."""
    unit = results["metric"]
    head = (
        f"| method | avg ({unit}) | Δ avg vs replay (paired) | BWT | FWT | forgetting "
        f"| params after each task | cells (final) | steps | memory floats | s/seed |"
    )
    rows = [head, "|" + "---|" * 11]
    for name, r in results["methods"].items():
        pm = lambda k, r=r: "—" if r[k] is None else f"{r[k]:.2f} ± {r[k + '_std']:.2f}"  # noqa: E731
        vs = r.get("vs_replay")
        delta = "—" if vs is None else f"{vs['mean']:+.2f} ± {vs['std']:.2f}"
        params = " → ".join(f"{p / 1e3:.0f}k" for p in r["params"])
        count = lambda k, r=r: f"{r[k]:.0f}" if k in r else "—"  # noqa: E731  # outside runners
        rows.append(
            f"| {name} | {pm('avg_accuracy')} | {delta} | {pm('bwt')} | {pm('fwt')} "
            f"| {pm('forgetting')} | {params} | {r['cells'][-1]:.0f} | {count('steps')} "
            f"| {count('memory_floats')} | {r['seconds']:.1f} |"
        )
    return "\n".join(rows)
