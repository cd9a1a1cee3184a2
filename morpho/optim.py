"""The optimizer, the learning-rate schedule and the gate penalty of the training loop."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from morpho.network import Network

if TYPE_CHECKING:  # the trainer imports this module
    from morpho.trainer import TrainConfig


def build_optimizer(net: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with two param groups: weight decay on matrices, none on vectors and strengths."""
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, p in sorted(net.named_parameters()):
        per_row_matrix = p.dim() >= 3 or (p.dim() == 2 and not name.startswith("banks."))
        (decay if per_row_matrix else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if cfg.sync_free:  # the fused kernel takes a device `found_inf` and skips on it
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.99), fused=True)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.99))


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to ``lr · min_lr_ratio``."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    span = max(1, cfg.steps - cfg.warmup)
    progress = min(1.0, (step - cfg.warmup) / span)
    ratio = cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return cfg.lr * ratio


def gate_penalty(net: Network, gate_activity: Tensor) -> Tensor:
    """L1 penalty on mean gate activity (N,), weighted by level: (level + 1) / (max level + 1)."""
    level = net.levels.float()  # on the device (no copy from the host tissue each step)
    weight = (level + 1) / (level.max() + 1)
    return (weight * gate_activity).sum() / max(1, level.numel())
