"""Mitosis: a hidden cell whose free energy stays high, and is not falling, divides."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from morpho.scheduler import Event, GrowthView, Rule
from morpho.tissue import HIDDEN


@dataclass(frozen=True)
class Mitosis(Rule):
    """F EMA in the top quantile for `patience` checks and not falling → split the cell.

    A cell that keeps failing to predict its input (high free energy) while training does
    not relieve it is overloaded; it divides into two daughters that share its outputs
    (Net2Net widening; when to split after Splitting Steepest Descent / Firefly). "High" is
    relative — above the ``quantile`` of the hidden cells' F at each check — so the law
    holds at any scale of F, and a tissue of equal cells does not divide. Score: F over
    that bar at the last check (> 1).
    """

    patience: int = 3  # consecutive checks F must stay high
    quantile: float = 0.75  # "high": above this quantile of the hidden cells' F
    noise: float = 1e-2  # relative noise on the daughters' rows, to break their symmetry
    max_splits: int = 1  # proposals per check, highest F first

    def propose(self, view: GrowthView) -> list[Event]:
        t = view.tissue
        hidden = t.role == HIDDEN
        fe = view.cell_history["fe_ema"][:, -self.patience :]  # (N, p), oldest first
        if int(hidden.sum()) < 2:
            return []
        bar = torch.nanquantile(fe[hidden], self.quantile, dim=0)  # (p,) one bar per check
        seen = ~fe.isnan().any(1)
        high = (fe > bar).all(1)
        not_falling = fe[:, -1] >= fe[:, 0]
        events = []
        rows = (hidden & seen & high & not_falling).nonzero().flatten().tolist()
        for row in sorted(rows, key=lambda r: -float(fe[r, -1]))[: self.max_splits]:
            f_now, f_then, b = float(fe[row, -1]), float(fe[row, 0]), float(bar[-1])
            events.append(Event(
                kind="split", cells=(int(t.cell_id[row]),), score=f_now / b if b > 0 else 1.0,
                reason=f"F EMA {f_now:.3f} > q{self.quantile:g} bar {b:.3f} for "
                       f"{self.patience} checks, not falling (was {f_then:.3f})",
                stats={"fe_ema": f_now, "fe_then": f_then, "bar": b},
                options={"noise": self.noise},
            ))  # fmt: skip
        return events
