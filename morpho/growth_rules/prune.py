"""Prune: an edge whose strength stays near zero is dropped."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from morpho.growth.rule import Event, GrowthView, Rule, require
from morpho.tissue import io_connected


@dataclass(frozen=True)
class Prune(Rule):
    """|strength| below ε for `patience` checks → disconnect the edge.

    A synapse that carries nothing is eliminated (synaptic pruning; SET / RigL drop the
    smallest weights). A cell's last input or last output edge is kept — a cell without
    either is apoptosis's business — and so is the last input→output path. The patience
    counts checks of the edge's own life, so a new dendrite (born at 0) has time to grow.
    Score: ``1 − |s|/ε``.
    """

    patience: int = 4  # consecutive checks |strength| must stay below epsilon
    epsilon: float = 0.02  # "near zero"

    def __post_init__(self) -> None:
        require(self.patience >= 1, "growth.prune.patience", ">= 1", self.patience)
        require(self.epsilon >= 0, "growth.prune.epsilon", ">= 0", self.epsilon)

    def propose(self, view: GrowthView) -> list[Event]:
        t = view.tissue
        if t.edge_index.shape[1] == 0:
            return []
        src, dst = t.edge_index
        s = view.edge_history[:, -self.patience :]  # (E, p); NaN < ε is False
        weak = (s < self.epsilon).all(1)
        fan_in = torch.bincount(dst, minlength=t.num_nodes)
        fan_out = torch.bincount(src, minlength=t.num_nodes)
        weak &= (fan_in[dst] > 1) & (fan_out[src] > 1)
        events = []
        for j in weak.nonzero().flatten().tolist():
            if not io_connected(t, dead_edges=[j]):
                continue
            a, b, now = int(src[j]), int(dst[j]), float(s[j, -1])
            events.append(
                Event(
                    kind="disconnect",
                    cells=(int(t.cell_id[a]), int(t.cell_id[b])),
                    edge=int(t.edge_id[j]),
                    score=1 - now / self.epsilon,
                    reason=f"|strength| {now:.4f} < ε={self.epsilon:g} for {self.patience} checks",
                    stats={"strength": float(view.strength[j])},
                )
            )
        return events
