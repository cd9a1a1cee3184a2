"""Run configuration: frozen dataclasses filled from presets, a TOML file and CLI flags.

    cfg = RunConfig.preset("small")                 # laptop-sized, about a minute on 2 cores
    cfg = cfg.merged(load_toml("my.toml"))          # [network] [train] [growth] … sections
    cfg = cfg.merged({"train": {"steps": 200}})     # CLI flags last
    save_toml(cfg.to_dict(), run / "config.toml")   # the resolved config of a run

Unknown keys, wrong types and out-of-range values raise ``ValueError`` naming what was
expected and what came.
"""

from __future__ import annotations

import dataclasses
import re
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from morpho.growth.config import GrowthConfig
from morpho.growth.rule import RULES, build_rule
from morpho.network import NetworkConfig
from morpho.plasticity import PlasticityConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class TrainConfig:
    """The training loop."""

    steps: int = 600  # optimizer steps
    batch_size: int = 16  # sequences per batch
    seq_len: int = 64  # tokens per sequence
    lr: float = 3e-3  # peak AdamW learning rate
    min_lr_ratio: float = 0.1  # cosine decay ends at lr · min_lr_ratio
    warmup: int = 50  # linear warm-up steps
    weight_decay: float = 0.05  # AdamW decay on matrices (not on vectors or edge strengths)
    grad_clip: float = 1.0  # global gradient-norm clip (0 disables)
    aux_weight: float = 0.1  # weight of the cells' local next-input prediction loss
    gate_l1: float = 0.5  # L1 penalty on gate activity of growing nets, more at higher levels
    eval_every: int = 100  # steps between validation passes
    eval_batches: int = 8  # batches per validation pass (fixed windows)
    log_every: int = 10  # steps between metrics.jsonl lines
    checkpoint_every: int = 0  # steps between resumable checkpoints (0: only the final one)
    keep_checkpoints: int = 2  # step checkpoints kept on disk (the newest ones)
    max_nonfinite: int = 5  # consecutive non-finite steps before the run stops
    sync_free: bool = False  # guard non-finite steps on the device (fused AdamW skips them);
    # checked and logged at log steps, so a non-logging step never waits for the device
    device: str = "cpu"  # torch device: cpu, cuda, cuda:1, mps
    seed: int = 0  # seeds data order, initialisation and noise

    def __post_init__(self) -> None:
        _require(self.steps >= 0, "train.steps", ">= 0", self.steps)
        for name in (
            "batch_size",
            "seq_len",
            "eval_every",
            "eval_batches",
            "log_every",
            "keep_checkpoints",
            "max_nonfinite",
        ):
            _require(getattr(self, name) >= 1, f"train.{name}", ">= 1", getattr(self, name))
        _require(0 < self.lr <= 10, "train.lr", "in (0, 10]", self.lr)  # also refuses nan, inf
        _require(
            re.fullmatch(r"cpu|mps|cuda(:\d+)?", self.device) is not None,
            "train.device",
            "cpu, cuda, cuda:N or mps",
            self.device,
        )
        _require(0 <= self.min_lr_ratio <= 1, "train.min_lr_ratio", "in [0, 1]", self.min_lr_ratio)
        for name in (
            "warmup",
            "weight_decay",
            "grad_clip",
            "aux_weight",
            "gate_l1",
            "checkpoint_every",
        ):
            _require(getattr(self, name) >= 0, f"train.{name}", ">= 0", getattr(self, name))


@dataclass(frozen=True)
class PonderConfig:
    """``[ponder]``: the time penalty of adaptive computation (``network.ponder_max > 1``)."""

    weight: float = 0.01  # τ of the ACT time penalty τ·ρ

    def __post_init__(self) -> None:
        _require(self.weight >= 0, "ponder.weight", ">= 0", self.weight)


@dataclass(frozen=True)
class PathNormConfig:
    """``[path_norm]``: the cell graph's 1-path-norm, logged and penalised."""

    weight: float = 0.0  # λ of the regulariser (0: off)

    def __post_init__(self) -> None:
        _require(self.weight >= 0, "path_norm.weight", ">= 0", self.weight)


@dataclass(frozen=True)
class LyapunovConfig:
    """``[lyapunov]``: finite-time Lyapunov exponents of the tissue, logged and optionally
    held at the edge of chaos."""

    every: int = 0  # steps between estimates (0: off)
    window: int = 16  # tokens between the perturbation and its read-out (< train.seq_len)
    weight: float = 0.0  # δ of δ·max(Λ − Λ*, 0)², on the steps the estimate runs
    target: float = 0.0  # Λ*: the edge of chaos

    def __post_init__(self) -> None:
        _require(self.every >= 0, "lyapunov.every", ">= 0", self.every)
        _require(self.weight >= 0, "lyapunov.weight", ">= 0", self.weight)
        _require(self.window >= 1, "lyapunov.window", ">= 1", self.window)
        _require(
            not self.weight or self.every > 0,
            "lyapunov.every",
            "> 0 when lyapunov.weight is set",
            self.every,
        )


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
            _require(
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
        return from_dict(RunConfig, _deep_merge(self.to_dict(), _moved(overrides)), "")

    def to_dict(self) -> dict[str, Any]:
        """Plain tables, the growth table resolved (every enabled rule's parameters)."""
        plain: dict[str, Any] = {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "growth"
        }
        for name in ("network", "train", "ponder", "path_norm", "lyapunov", "plasticity"):
            plain[name] = dataclasses.asdict(plain[name])
        plain["growth"] = self.growth.to_dict()
        return _to_plain(plain)


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


def from_dict(cls: type, data: dict[str, Any], where: str) -> Any:
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise ValueError(f"{where or 'config'}: expected a table, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = set(data) - set(fields)
    if unknown:
        raise ValueError(
            f"unknown config key {where}{sorted(unknown)[0]!r}; "
            f"expected one of: {', '.join(fields)}"
        )
    kwargs = {k: _coerce(hints[k], v, f"{where}{k}") for k, v in data.items()}
    return cls(**kwargs)


def growth_from_dict(data: Any, where: str = "growth.") -> GrowthConfig:
    """The ``[growth]`` table: its own keys, and a sub-table per rule whose parameters are
    typed by the rule's dataclass and checked by it (``ValueError`` naming the bad one)."""
    if isinstance(data, GrowthConfig):
        return data
    if not isinstance(data, dict):
        raise ValueError(f"{where[:-1]}: expected a table, got {type(data).__name__}")
    fields = {f.name for f in dataclasses.fields(GrowthConfig)} - {"params"}
    hints = typing.get_type_hints(GrowthConfig)
    kwargs: dict[str, Any] = {}
    params: dict[str, dict[str, Any]] = {}
    for key, value in data.items():
        if key in fields:
            kwargs[key] = _coerce(hints[key], value, f"{where}{key}")
        elif isinstance(value, dict) and key in RULES:
            params[key] = _rule_params(key, value, f"{where}{key}.")
        else:
            raise ValueError(
                f"unknown config key {where}{key!r}; expected one of: "
                f"{', '.join(sorted(fields) + RULES.names())}"
            )
    cfg = GrowthConfig(**kwargs, params=params)
    for name in cfg.rules:
        build_rule(name, cfg.params.get(name, {}))
    return cfg


def _rule_params(name: str, table: dict[str, Any], where: str) -> dict[str, Any]:
    """Rule ``name``'s parameters, typed and checked by building the rule once."""
    cls = RULES.get(name)
    known: set[str] = set()
    if dataclasses.is_dataclass(cls):
        known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ValueError(
            f"unknown parameter {where}{unknown[0]}; expected one of: {', '.join(sorted(known))}"
        )
    hints = typing.get_type_hints(cls)
    typed = {k: _coerce(hints[k], v, f"{where}{k}") for k, v in table.items()}
    build_rule(name, typed)
    return typed


def _coerce(hint: Any, value: Any, where: str) -> Any:
    if hint is GrowthConfig:
        return growth_from_dict(value, where + ".")
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where + ".")
    origin = typing.get_origin(hint)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        inner = typing.get_args(hint)[0]
        return tuple(_coerce(inner, v, where) for v in value)
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a table, got {value!r}")
        args = typing.get_args(hint)
        inner = args[1] if len(args) == 2 else Any
        return {str(k): _coerce(inner, v, f"{where}.{k}") for k, v in value.items()}
    if origin in (typing.Union, types.UnionType):
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and (
        not isinstance(value, hint) or (hint is int and isinstance(value, bool))
    ):
        raise ValueError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value


def resolve_device(name: str) -> torch.device:
    """The torch device ``name`` names; ``ValueError`` listing the choices otherwise."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; expected cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available; expected cpu")
    return device


def _require(ok: bool, name: str, expected: str, got: Any) -> None:
    if not ok:
        raise ValueError(f"{name} must be {expected}; got {got!r}")


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def _to_plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _to_plain(v) for k, v in x.items() if v is not None}
    if isinstance(x, (list, tuple)):
        return [_to_plain(v) for v in x]
    return x


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML config; ``ValueError`` with the file name on a missing or invalid file."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"config file {str(p)!r} does not exist; expected a TOML file")
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"config file {str(p)!r} is not valid TOML: {e}") from None


def dump_toml(data: dict[str, Any]) -> str:
    import tomli_w  # only writers need it (GPU images often lack it; reading is stdlib)

    return tomli_w.dumps(_to_plain(data))
