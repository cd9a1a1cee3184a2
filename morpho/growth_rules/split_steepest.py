"""Split steepest: the hidden cell whose splitting matrix is most negative divides along it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from morpho.growth.rule import Event, GrowthView, Rule, require
from morpho.tissue import HIDDEN


@dataclass(frozen=True)
class SplitSteepest(Rule):
    """λ_min of the splitting matrix below −`threshold` → split along ±ε·v (Liu et al. 2019).

    Splitting Steepest Descent (Liu et al. 2019; Firefly, Wu et al. 2020): a cell split
    into two half-weight daughters at ``θ ± δ`` changes the loss by ``½ δᵀSδ`` (to second
    order), where ``S`` is the cell's splitting matrix — the curvature of its own output
    map weighted by the loss gradient it receives (:mod:`morpho.growth.splitting`). Where
    ``S`` has a negative eigenvalue, splitting along its eigenvector ``v`` lowers the loss
    that plain gradient descent, stuck at a saddle of the cell's parameters, cannot; the
    cell with the most negative ``λ_min`` gains the most. The daughters get ``θ ± ε‖θ‖v``
    (function-preserving to first order; the predicted loss change ``½ (ε‖θ‖)² λ_min`` is
    recorded). Score: ``1 − λ_min`` (> 1 for a negative eigenvalue). A blind control
    replays the split as an antithetic one (``θ ± δ``, ``δ = ε · rms(row) · N(0, 1)`` per
    bank: about the same ``‖δ‖ ≈ ε‖θ‖``) on a drawn cell, so that the control differs
    only in what the signal chose: the cell and the direction.
    """

    needs_splitting: ClassVar[bool] = True

    threshold: float = 0.0  # split only cells with λ_min < −threshold (nats per unit² offset)
    epsilon: float = 0.1  # the offset's size relative to the norm of the cell's copied rows
    max_splits: int = 1  # proposals per check, most negative λ_min first

    def __post_init__(self) -> None:
        require(self.threshold >= 0, "growth.split_steepest.threshold", ">= 0", self.threshold)
        require(self.epsilon > 0, "growth.split_steepest.epsilon", "> 0", self.epsilon)
        require(self.max_splits >= 0, "growth.split_steepest.max_splits", ">= 0", self.max_splits)

    def propose(self, view: GrowthView) -> list[Event]:
        probe = view.splitting
        if probe is None:
            return []
        lam = probe["min_eig"]  # (N,) NaN where not hidden
        ok = (view.tissue.role == HIDDEN) & (torch.nan_to_num(lam, nan=0.0) < -self.threshold)
        rows = sorted(ok.nonzero().flatten().tolist(), key=lambda r: float(lam[r]))
        return [self._event(view, probe, r) for r in rows[: self.max_splits]]

    def _event(self, view: GrowthView, probe: Mapping[str, Any], row: int) -> Event:
        lam, size = float(probe["min_eig"][row]), self.epsilon * float(probe["theta_norm"][row])
        offsets = {k: size * v[row] for k, v in probe["direction"].items()}
        predicted = 0.5 * size**2 * lam
        return Event(
            kind="split",
            cells=(int(view.tissue.cell_id[row]),),
            score=1.0 - lam,
            reason=f"splitting matrix λ_min {lam:.4f} < -{self.threshold:g}; split along "
            f"±{self.epsilon:g}·‖θ‖·v (predicted loss change {predicted:+.2e})",
            stats={"min_eig": lam, "offset_norm": size, "predicted_dloss": predicted},
            options={"offsets": offsets},
            # blind: the same cell-relative offset size along a random direction
            replay={"antithetic": True, "noise": self.epsilon},
        )
