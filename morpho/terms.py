"""Plug-in terms of the training objective and monitors of a run, through one registry.

A term is a small object the trainer asks, at every step, for its contribution to the loss
(a function of the step's forward record and batch, already weighted from its config
section) and, at log steps, for the figures it wants in ``metrics.jsonl``::

    class Sparsity(Term):
        def __init__(self, weight: float) -> None:
            self.weight = weight
        def loss(self, ctx: StepContext) -> Tensor | None:
            return self.weight * ctx.output.gate_activity.sum()

    trainer = Trainer(net, task, cfg.train, terms=[Sparsity(0.1)])

The built-in mechanisms (ACT's time penalty, path norm, Lyapunov exponents, KNIFE
entropies) live in :mod:`morpho.mechanisms` and are registered in :data:`TERMS` by
name; the trainer loop imports none of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from morpho.output import Output
from morpho.registry import Registry


@dataclass(frozen=True)
class StepContext:
    """What a term sees at one training step.

    Attributes:
        net: the model being trained.
        output: the step's forward record (None for a model without by-products).
        batch: ``(x, y)`` on the device, (B, T) long each.
        step: the training step.
        generator: the monitors' own random stream (measuring leaves the run's untouched).
    """

    net: Any
    output: Output | None
    batch: tuple[Tensor, Tensor]
    step: int
    generator: torch.Generator


class Term:
    """Template for a plug-in term: override what you need."""

    def loss(self, ctx: StepContext) -> Tensor | None:
        """The weighted contribution to this step's loss, or None."""
        return None

    def record(self, net: Any, output: Output | None) -> dict[str, float]:
        """Figures for a train log line (and the summary), given the record to report."""
        return {}

    def log_output(self) -> Output | None:
        """A forward record this term ran in the step, reported instead of the step's own."""
        return None

    def second_order(self) -> bool:
        """Does the loss backpropagate through a Jacobian product (a double backward)?"""
        return False

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


# name → builder from the run config (``morpho.config.RunConfig``) to a term, or None when
# the run's config leaves the mechanism off
TERMS: Registry[Callable[[Any], Term | None]] = Registry("loss term", "morpho.loss_terms")
