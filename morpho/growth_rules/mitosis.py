"""Mitosis: a hidden cell whose free energy stays high, and is not falling, divides."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from morpho.growth.rule import Event, GrowthView, Rule, require
from morpho.tissue import HIDDEN

MODES = ("parallel", "series", "auto")


@dataclass(frozen=True)
class Mitosis(Rule):
    """F EMA in the top quantile for `patience` checks, not falling → divide (parallel or series).

    A cell that keeps failing to predict its input (high free energy) while training does
    not relieve it is overloaded; it divides into two daughters that share its outputs
    (Net2Net widening; when to split after Splitting Steepest Descent / Firefly). "High" is
    relative — above the ``quantile`` of the hidden cells' F at each check — so the law
    holds at any scale of F, and a tissue of equal cells does not divide. Score: F over
    that bar at the last check (> 1).

    ``mode`` chooses how the cell divides: ``parallel`` (two daughters side by side: the
    tissue widens), ``series`` (a new cell inserted after it, identity at birth, on a new
    level: the tissue deepens; see :func:`morpho.edits.insert_edit`), or ``auto``: in series
    when the cell's gate EMA is above ``series_gate`` — its demon keeps the expensive
    geometric core open, so the cell needs more processing after it rather than a twin —
    in parallel otherwise.
    """

    patience: int = 3  # consecutive checks F must stay high
    quantile: float = 0.75  # "high": above this quantile of the hidden cells' F
    noise: float = 1e-2  # relative noise on the daughters' rows, to break their symmetry
    antithetic: bool = False  # the daughters get θ ± δ (function-preserving to first order)
    # instead of independent draws (morpho.edits.split_edit)
    max_splits: int = 1  # proposals per check, highest F first
    mode: str = "parallel"  # parallel | series | auto
    series_gate: float = 0.5  # auto: divide in series when the gate EMA is above this

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mitosis mode must be one of {', '.join(MODES)}; got {self.mode!r}")
        require(self.patience >= 1, "growth.mitosis.patience", ">= 1", self.patience)
        require(0 <= self.quantile <= 1, "growth.mitosis.quantile", "in [0, 1]", self.quantile)
        require(self.noise >= 0, "growth.mitosis.noise", ">= 0", self.noise)
        require(self.max_splits >= 0, "growth.mitosis.max_splits", ">= 0", self.max_splits)
        require(
            0 <= self.series_gate <= 1, "growth.mitosis.series_gate", "in [0, 1]", self.series_gate
        )

    def _split_options(self) -> dict[str, float | bool]:
        """The split's keyword arguments (``noise``, and ``antithetic`` when set)."""
        return {"noise": self.noise, **({"antithetic": True} if self.antithetic else {})}

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
            gate = float(t.gate_ema[row])
            series = self.mode == "series" or (self.mode == "auto" and gate > self.series_gate)
            series = series and bool((t.edge_index[0] == row).any())  # it must feed a cell
            events.append(
                Event(
                    kind="insert" if series else "split",
                    cells=(int(t.cell_id[row]),),
                    score=f_now / b if b > 0 else 1.0,
                    reason=f"F EMA {f_now:.3f} > q{self.quantile:g} bar {b:.3f} for "
                    f"{self.patience} checks, not falling (was {f_then:.3f})"
                    + (f"; in series (gate EMA {gate:.2f})" if series else ""),
                    stats={"fe_ema": f_now, "fe_then": f_then, "bar": b, "gate_ema": gate},
                    options={} if series else self._split_options(),
                )
            )
        return events
