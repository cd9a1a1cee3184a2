"""Deepen: when the tissue's free energy stops falling, cells are born in series, early."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from morpho.growth.rule import Event, GrowthView, Rule, mean_fe_fall, require
from morpho.tissue import OUTPUT


@dataclass(frozen=True)
class Deepen(Rule):
    """Mean F EMA fell < `plateau` over `patience` checks (or step ≥ `by`) → a cell in series.

    Depth growth by function-preserving insertion (G_stack's lesson, Du et al. 2024: grow
    depth early, in large steps, from a model that has stopped improving fast): the new cell
    copies the rows of the cell it follows and starts with a zero write projection, so it is
    the identity at birth and then trains from its mother's weights
    (:func:`morpho.edits.insert_edit`). *When*: the tissue's mean free-energy EMA has
    fallen by less than ``plateau`` (relative) over the last ``patience`` checks — the small
    tissue is saturating — or, at the latest, at the first check at or after step ``by``
    (0: no deadline). *Where*: after the cells of highest F EMA that feed another cell, up to
    ``per_round`` a check, until the tissue has ``depth`` levels. Score: 1 + the F EMA's
    share of the highest.
    """

    depth: int = 4  # levels the tissue may reach by deepening
    patience: int = 2  # checks the plateau is measured over
    plateau: float = 0.02  # relative fall of the mean F EMA that counts as no longer falling
    by: int = 0  # deepen at the first check at or after this step even without a plateau
    per_round: int = 1  # cells born in series per check (each after a different cell)

    def __post_init__(self) -> None:
        require(self.depth >= 2, "growth.deepen.depth", ">= 2", self.depth)
        require(self.patience >= 1, "growth.deepen.patience", ">= 1", self.patience)
        require(0 <= self.plateau <= 1, "growth.deepen.plateau", "in [0, 1]", self.plateau)
        require(self.by >= 0, "growth.deepen.by", ">= 0", self.by)
        require(self.per_round >= 1, "growth.deepen.per_round", ">= 1", self.per_round)

    def propose(self, view: GrowthView) -> list[Event]:
        t = view.tissue
        room = self.depth - (int(t.level.max()) + 1)
        if room <= 0:
            return []
        trend = mean_fe_fall(view, self.patience)
        fall = math.nan if trend is None else trend[2]  # NaN: too few checks, no plateau
        due = self.by > 0 and view.step >= self.by
        if not (fall < self.plateau or due):  # a NaN fall is no plateau
            return []
        feeds = torch.zeros(len(t.role), dtype=torch.bool)
        feeds[t.edge_index[0]] = True
        now = view.cell_history["fe_ema"][:, -1]
        rows = (feeds & (t.role != OUTPUT) & ~now.isnan()).nonzero().flatten().tolist()
        rows = sorted(rows, key=lambda r: -float(now[r]))[: min(self.per_round, room)]
        top = max((float(now[r]) for r in rows), default=1.0) or 1.0
        why = f"mean F EMA fell {fall:+.1%} over {self.patience} checks (< {self.plateau:.1%})"
        if not fall < self.plateau:
            why = f"step {view.step} >= by={self.by}"
        return [
            Event(
                kind="insert",
                cells=(int(t.cell_id[r]),),
                score=1.0 + float(now[r]) / top,
                reason=f"{why}; F EMA {float(now[r]):.3f}; depth {room} below {self.depth}",
                stats={"fe_ema": float(now[r]), **({"fall": fall} if fall == fall else {})},
            )
            for r in rows
        ]
