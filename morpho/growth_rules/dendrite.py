"""Dendrite: grow the missing edges that the loss pulls on hardest, if they pay for their length.

    Dendrite(max_distance=4.0, wiring_cost=0.5)                  # local growth only
    Dendrite(wormholes=True)          # [growth.dendrite] wormholes = true: long jumps allowed
    wormhole_edges(tissue, max_distance=4.0)                     # (E,) bool, for metrics/plots

A *wormhole* is an edge longer than ``max_distance``: a global geometric jump.
With ``wormholes`` on such candidates are allowed, charged by their length like every edge
(the wiring term ``γ·W`` of the free energy charges them the same way), so they grow only
where the gradient pays for the distance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor
from torch_geometric.data import Data

from morpho.growth.rule import Event, GrowthView, Rule


@dataclass(frozen=True)
class Dendrite(Rule):
    """Grow edges whose zero-strength candidate has the largest loss gradient, minus wiring cost.

    For a candidate edge a → b at strength 0, ``∂L/∂s = Σ_{B,T} ⟨∂L/∂x_b, y_a⟩`` (RigL's
    regrowth criterion; GradMax). Its magnitude is taken relative to the median over the
    existing edges, so the score ``|∂L/∂s| / median − wiring_cost · ‖pos_a − pos_b‖`` says
    "this edge would learn faster than a typical one, even after paying for its length".
    Candidates go up a level (level a < level b) and are not edges yet; they must lie within
    ``max_distance`` unless ``wormholes`` is on, in which case a longer one (a wormhole) also
    pays ``wormhole_cost`` per unit of length beyond ``max_distance``.
    """

    needs_edge_gradient: ClassVar[bool] = True

    max_distance: float = 4.0  # local candidates: cells this close in pos space
    wiring_cost: float = 0.5  # score paid per unit of edge length
    threshold: float = 3.0  # propose when the score reaches this
    max_new: int = 1  # proposals per check, best first
    wormholes: bool = False  # also allow candidates beyond max_distance
    wormhole_cost: float = 0.0  # extra score paid per unit of length beyond max_distance
    # (0: a wormhole pays the wiring charge like any edge, one law for all lengths)

    def __post_init__(self) -> None:
        for name in ("max_distance", "wiring_cost", "wormhole_cost"):
            if getattr(self, name) < 0:
                raise ValueError(
                    f"growth.dendrite.{name} must be >= 0; got {getattr(self, name)!r}"
                )

    def propose(self, view: GrowthView) -> list[Event]:
        grad = view.edge_gradient  # (N, N) |∂L/∂s| for row a → row b
        t = view.tissue
        if grad is None or t.edge_index.shape[1] == 0:
            return []
        src, dst = t.edge_index
        reference = grad[src, dst].median().clamp(min=1e-12)
        dist = torch.cdist(t.pos, t.pos)  # (N, N)
        score = grad / reference - self.wiring_cost * dist
        far = dist > self.max_distance  # (N, N) wormhole candidates
        ok = t.level[:, None] < t.level[None, :]
        if self.wormholes:
            if self.wormhole_cost:
                score = score - self.wormhole_cost * (dist - self.max_distance).clamp(min=0)
        else:
            ok &= ~far
        ok[src, dst] = False
        score = score.masked_fill(~ok, -torch.inf)
        best = score.flatten().topk(min(self.max_new, score.numel()))
        events = []
        for value, flat in zip(best.values.tolist(), best.indices.tolist(), strict=True):
            if value < self.threshold:
                break
            a, b = divmod(flat, t.num_nodes)
            events.append(
                self._event(
                    t,
                    a,
                    b,
                    value,
                    float(grad[a, b] / reference),
                    float(dist[a, b]),
                    bool(far[a, b]),
                )
            )
        return events

    @staticmethod
    def _event(
        t: Data, a: int, b: int, score: float, rel: float, length: float, wormhole: bool
    ) -> Event:
        what = "wormhole: " if wormhole else ""
        return Event(
            kind="connect",
            cells=(int(t.cell_id[a]), int(t.cell_id[b])),
            score=score,
            reason=f"{what}|dL/ds| {rel:.2f}x the median edge's, length {length:.2f}",
            stats={"grad_rel": rel, "length": length, "wormhole": float(wormhole)},
        )


def wormhole_edges(tissue: Data, max_distance: float) -> Tensor:
    """Which edges are wormholes: longer than ``max_distance`` in ``pos`` space.

    Shapes:
        returns (E,) bool, aligned with ``tissue.edge_index``.
    """
    src, dst = tissue.edge_index
    return (tissue.pos[src] - tissue.pos[dst]).norm(dim=-1) > max_distance
