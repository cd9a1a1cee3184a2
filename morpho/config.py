"""Run configuration: the presets and :class:`RunConfig`, filled from a preset, a TOML file
and CLI flags.

    cfg = RunConfig.preset("small")                 # laptop-sized, about a minute on 2 cores
    cfg = cfg.merged(load_toml("my.toml"))          # [network] [train] [growth] … sections
    cfg = cfg.merged({"train": {"steps": 200}})     # CLI flags last
    text = dump_toml(cfg.to_dict())                 # the resolved config of a run

Each section's dataclass lives beside what it configures (``NetworkConfig`` in
:mod:`morpho.network`, ``TrainConfig`` in :mod:`morpho.trainer`, ``GrowthConfig`` in
:mod:`morpho.growth.config`, the mechanisms' in :mod:`morpho.mechanisms`); the one coercer
(:mod:`morpho.coerce`) fills them, and ``load_toml``/``dump_toml`` are in
:mod:`morpho.files`. Unknown keys, wrong types and out-of-range values raise ``ValueError``
naming what was expected and what came.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from morpho.coerce import deep_merge, from_dict, require, to_plain
from morpho.growth.config import GrowthConfig
from morpho.mechanisms import LyapunovConfig, PathNormConfig, PonderConfig
from morpho.network import NetworkConfig
from morpho.plasticity import PlasticityConfig
from morpho.trainer import TrainConfig


@dataclass(frozen=True)
class RunConfig:
    """Everything a run needs: task, network, training, growth."""

    task: str = "lang"  # registered task (morpho tasks entry points)
    task_options: dict[str, Any] = field(default_factory=dict)  # passed to the task
    network: NetworkConfig = field(default_factory=NetworkConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    growth: GrowthConfig = field(default_factory=GrowthConfig)  # scheduler and rule settings
    ponder: PonderConfig = field(default_factory=PonderConfig)  # optional mechanisms: one
    path_norm: PathNormConfig = field(default_factory=PathNormConfig)  # section each
    lyapunov: LyapunovConfig = field(default_factory=LyapunovConfig)
    plasticity: PlasticityConfig = field(default_factory=PlasticityConfig)  # by birth task

    def __post_init__(self) -> None:
        if self.lyapunov.every:
            seq_len = self.train.seq_len
            require(
                self.lyapunov.window < seq_len,
                "lyapunov.window",
                f"in [1, train.seq_len={seq_len})",
                self.lyapunov.window,
            )

    @staticmethod
    def preset(name: str) -> RunConfig:
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; expected one of: {', '.join(PRESETS)}")
        return RunConfig().merged(PRESETS[name])

    def merged(self, overrides: dict[str, Any]) -> RunConfig:
        """A copy with ``overrides`` (nested dicts by section) applied and validated; the
        mechanisms' former ``[train]`` keys (``train.lyapunov_every`` …) still work."""
        return from_dict(RunConfig, deep_merge(self.to_dict(), _moved(overrides)), "")

    def to_dict(self) -> dict[str, Any]:
        """Plain tables, the growth table resolved (every enabled rule's parameters)."""
        plain: dict[str, Any] = {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "growth"
        }
        for name in ("network", "train", "ponder", "path_norm", "lyapunov", "plasticity"):
            plain[name] = dataclasses.asdict(plain[name])
        plain["growth"] = self.growth.to_dict()
        return to_plain(plain)


IMAGE_NETWORK: dict[str, Any] = {
    "cell_type": "wide",
    "d_cell": 16,
    "d_stream": 32,
    "level_sizes": [1, 1, 1, 1],
}
IMAGE_GROWTH: dict[str, Any] = {
    "max_cells": 14,
    "interval": 20,
    "start": 40,
    "mitosis": {"patience": 2, "max_splits": 2},
    "apoptosis": {"epsilon": 0.1},
}
PRESETS: dict[str, dict[str, Any]] = {
    # about a minute on 2 CPU cores
    "small": {
        "network": {"d_cell": 32, "level_sizes": [2, 4, 4, 2]},
        "train": {"steps": 600, "batch_size": 16, "seq_len": 64, "eval_every": 100},
    },
    # a few minutes on 2 CPU cores
    "base": {
        "network": {"d_cell": 64, "level_sizes": [2, 4, 4, 2]},
        "train": {"steps": 3000, "batch_size": 32, "seq_len": 128, "eval_every": 250},
    },
    # the published anchors' budget: batch 64 × 128, 3,000 steps (GPU)
    "anchor": {
        "network": {"d_cell": 64, "level_sizes": [2, 6, 6, 2]},
        "train": {"steps": 3000, "batch_size": 64, "seq_len": 128, "eval_every": 250},
    },
    # the main command's default on the lang task: the small preset's loop, the wide-stream
    # cell (d_stream 96, a 1-1-1-1 seed, d_cell 38: ~126k parameters) at its measured best lr
    # (benchmarks/cell_design.md)
    "wide": {
        "network": {
            "cell_type": "wide",
            "d_cell": 38,
            "d_stream": 96,
            "level_sizes": [1, 1, 1, 1],
        },
        "train": {"steps": 600, "batch_size": 16, "seq_len": 64, "eval_every": 100, "lr": 1.5e-2},
    },
    # the image tasks (benchmarks/images.md): a 4-cell seed of wide-stream cells (16 channels
    # on a 32-wide stream) that may grow to 14 cells, two splits a check, apoptosis only of
    # cells whose gate stays below 0.1; an image's own shape fixes train.seq_len
    "digits": {
        "network": IMAGE_NETWORK,
        "train": {"steps": 600, "batch_size": 32, "eval_every": 25},
        "growth": IMAGE_GROWTH,
    },
    "mnist": {
        "network": IMAGE_NETWORK,
        "train": {"steps": 1500, "batch_size": 32, "eval_every": 50},
        "growth": {**IMAGE_GROWTH, "interval": 40, "start": 100},
    },
}


# keys that moved from [train] into their mechanism's own section
MOVED = {
    "ponder_weight": ("ponder", "weight"),
    "path_norm_weight": ("path_norm", "weight"),
    "lyapunov_every": ("lyapunov", "every"),
    "lyapunov_window": ("lyapunov", "window"),
    "lyapunov_weight": ("lyapunov", "weight"),
    "lyapunov_target": ("lyapunov", "target"),
}


def _moved(overrides: dict[str, Any]) -> dict[str, Any]:
    """``overrides`` with the moved ``[train]`` keys put into their own sections."""
    train = overrides.get("train")
    if not isinstance(train, dict) or not set(train) & set(MOVED):
        return overrides
    out = {**overrides, "train": {k: v for k, v in train.items() if k not in MOVED}}
    for key in set(train) & set(MOVED):
        section, name = MOVED[key]
        out[section] = {**out.get(section, {}), name: train[key]}
    return out
