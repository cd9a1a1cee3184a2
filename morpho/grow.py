"""``grow``: the library function behind ``morpho grow`` — build, train, write the run.

    summary = grow(RunConfig.preset("small"), out="runs/demo")

Growth (the :class:`~morpho.growth.scheduler.Scheduler`) runs unless ``cfg.growth.enabled`` is
false; ``config.toml`` records the resolved growth table with every rule's parameters.

Everything is validated (config, task, data) before the run directory is created, so bad
input leaves nothing on disk.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from morpho import distributed
from morpho.checkpoint import latest_checkpoint, network_from_payload
from morpho.config import RunConfig, dump_toml, load_toml
from morpho.growth.config import GrowthConfig
from morpho.growth.scheduler import Scheduler
from morpho.mechanisms import build_terms
from morpho.network import Network
from morpho.plasticity import Plasticity
from morpho.rundir import RunDir
from morpho.tasks import TASKS, task_kind, task_overrides
from morpho.trainer import Callback, Trainer


def build_task(cfg: RunConfig) -> Any:
    """The configured task; ``ValueError`` on an unknown task or bad task options."""
    task_cls = TASKS.get(cfg.task)
    try:
        return task_cls(**cfg.task_options)
    except TypeError as e:
        raise ValueError(f"bad options for task {cfg.task!r}: {e}") from None


def fit_to_task(cfg: RunConfig, task: Any) -> RunConfig:
    """``cfg`` with what a classification task fixes (its inputs' shape, a readout once per
    example: :func:`morpho.tasks.task_overrides`); a language task's config unchanged."""
    if task_kind(task) == "lm":
        return cfg
    return cfg.merged(task_overrides(task, cfg.network.readout))


def build_network(cfg: RunConfig, vocab_size: int) -> Network:
    return Network(cfg.network.__class__(**{**cfg.network.__dict__, "vocab_size": vocab_size}))


def grow(
    cfg: RunConfig,
    out: str | os.PathLike[str],
    progress: bool = False,
    overwrite: bool = False,
    callbacks: list[Callback] | None = None,
) -> dict[str, Any]:
    """Train ``cfg`` into the run directory ``out``; returns the summary."""
    torch.manual_seed(cfg.train.seed)
    growth = cfg.growth
    task = build_task(cfg)
    cfg = fit_to_task(cfg, task)
    net = build_network(cfg, task.vocab_size)
    check_budgets(growth, net)
    parallel = distributed.init_from_env(torch.device(cfg.train.device))
    main = distributed.is_main()  # data-parallel: only rank 0 writes the run directory
    run = RunDir(out, overwrite=overwrite) if main else None
    n_procs = distributed.world_size()
    if parallel and cfg.train.batch_size % n_procs:
        raise ValueError(
            f"train.batch_size must be a multiple of the {n_procs} processes; "
            f"got {cfg.train.batch_size}"
        )
    scheduler: list[Callback] = [Scheduler(growth)] if growth.enabled else []
    scheduler += [Plasticity(cfg.plasticity)] if cfg.plasticity.enabled else []
    trainer = Trainer(
        net,
        task,
        cfg.train,
        run=run,
        callbacks=[*scheduler, *(callbacks or [])],
        progress=progress and main,
        terms=build_terms(cfg),
    )
    if run is not None:
        resolved = {"network": {"vocab_size": task.vocab_size}, "growth": growth.to_dict()}
        run.create(dump_toml(cfg.merged(resolved).to_dict()))
    try:
        return trainer.fit()
    finally:
        if run is not None:
            run.release()


def check_budgets(growth: GrowthConfig, net: Network) -> None:
    """``ValueError`` if a growth budget is below what the seed tissue already has."""
    if not growth.enabled:
        return
    if growth.max_cells < net.tissue.num_nodes:
        raise ValueError(
            f"growth.max_cells must be >= the seed tissue's "
            f"{net.tissue.num_nodes} cells; got {growth.max_cells}"
        )
    if growth.max_params and growth.max_params < net.n_params():
        raise ValueError(
            f"growth.max_params must be 0 (no limit) or >= the seed tissue's "
            f"{net.n_params()} parameters; got {growth.max_params}"
        )


def resume(
    run_path: str | os.PathLike[str],
    steps: int | None = None,
    progress: bool = False,
    callbacks: list[Callback] | None = None,
) -> dict[str, Any]:
    """Continue a run from its newest valid checkpoint; ``steps`` extends the run.

    On CPU the resumed run writes the same ``metrics.jsonl`` and ``events.jsonl`` lines as
    the run done in one go (wall-clock figures such as tokens/s aside).
    """
    run = RunDir.existing(run_path)
    cfg = RunConfig().merged(load_toml(run.path / "config.toml"))
    if steps is not None:
        cfg = cfg.merged({"train": {"steps": steps}})
    _, payload = latest_checkpoint(run.path / "checkpoints")
    if "trainer" not in payload["extra"]:
        raise ValueError(f"checkpoint of {str(run.path)!r} has no trainer state to resume from")
    done = int(payload["extra"]["trainer"]["step"])
    if done >= cfg.train.steps:
        raise ValueError(
            f"run {str(run.path)!r} already finished {done} steps; "
            f"expected --steps above {done} to continue it"
        )
    growth = cfg.growth
    task = build_task(cfg)
    net = network_from_payload(payload)
    scheduler: list[Callback] = [Scheduler(growth)] if growth.enabled else []
    scheduler += [Plasticity(cfg.plasticity)] if cfg.plasticity.enabled else []
    trainer = Trainer(
        net,
        task,
        cfg.train,
        run=run,
        callbacks=[*scheduler, *(callbacks or [])],
        progress=progress,
        terms=build_terms(cfg),
    )
    trainer.restore(payload)
    if steps is not None:
        run.write_text("config.toml", dump_toml(cfg.to_dict()))
    try:
        return trainer.fit()
    finally:
        if run is not None:
            run.release()


def default_run_path(task: str) -> Path:
    """``runs/<task>-<n>`` with the first unused ``n``."""
    n = 0
    while (path := Path("runs") / f"{task}-{n}").exists():
        n += 1
    return path
