"""Dendrite: grow the missing edges that the loss pulls on hardest, if they are short."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from morpho.scheduler import Event, GrowthView, Rule


@dataclass(frozen=True)
class Dendrite(Rule):
    """Grow edges whose zero-strength candidate has the largest loss gradient, minus wiring cost.

    For a candidate edge a → b at strength 0, ``∂L/∂s = Σ_{B,T} ⟨∂L/∂x_b, y_a⟩`` (RigL's
    regrowth criterion; GradMax). Its magnitude is taken relative to the median over the
    existing edges, so the score ``|∂L/∂s| / median − wiring_cost · ‖pos_a − pos_b‖`` says
    "this edge would learn faster than a typical one, even after paying for its length".
    Only nearby pairs going up a level (level a < level b) are candidates.
    """

    needs_edge_gradient: ClassVar[bool] = True

    max_distance: float = 4.0  # candidates only between cells this close in pos space
    wiring_cost: float = 0.5  # score paid per unit of edge length
    threshold: float = 3.0  # propose when the score reaches this
    max_new: int = 1  # proposals per check, best first

    def propose(self, view: GrowthView) -> list[Event]:
        grad = view.edge_gradient  # (N, N) |∂L/∂s| for row a → row b
        t = view.tissue
        if grad is None or t.edge_index.shape[1] == 0:
            return []
        src, dst = t.edge_index
        reference = grad[src, dst].median().clamp(min=1e-12)
        dist = torch.cdist(t.pos, t.pos)  # (N, N)
        score = grad / reference - self.wiring_cost * dist
        ok = (t.level[:, None] < t.level[None, :]) & (dist <= self.max_distance)
        ok[src, dst] = False
        score = score.masked_fill(~ok, -torch.inf)
        best = score.flatten().topk(min(self.max_new, score.numel()))
        events = []
        for value, flat in zip(best.values.tolist(), best.indices.tolist(), strict=True):
            if value < self.threshold:
                break
            a, b = divmod(flat, t.num_nodes)
            rel, d = float(grad[a, b] / reference), float(dist[a, b])
            events.append(Event(
                kind="connect", cells=(int(t.cell_id[a]), int(t.cell_id[b])), score=value,
                reason=f"|dL/ds| {rel:.2f}x the median edge's, length {d:.2f}",
                stats={"grad_rel": rel, "length": d},
            ))  # fmt: skip
        return events
