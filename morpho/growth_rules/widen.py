"""Widen: when the tissue's free energy stops falling early in a run, every cell grows channels."""

from __future__ import annotations

import math
from dataclasses import dataclass

from morpho.growth.rule import Event, GrowthView, Rule, mean_fe_fall, require

INITS = ("zero", "gradmax")


@dataclass(frozen=True)
class Widen(Rule):
    """Mean F EMA falls < `tolerance` in `patience` checks, before `max_fraction` → widen all cells.

    A tissue whose free energy has stopped falling has used what its width can hold; more
    channels in every cell (a function-preserving edit: new channels are zero-output at
    birth, old entries keep their optimizer state, :func:`morpho.edits.widen_edit`) give it
    room. Width is the dimension worth most at equal parameters, and a channel born late gets
    too few steps to pay for itself, so the rule grows early and in large steps: each event
    multiplies ``d_cell`` by ``factor`` (up to ``to``, rounded down to a ``multiple``: the
    wide cell widens by whole heads), and none fires after ``max_fraction``
    of the training steps. The plateau test is relative — the mean over live cells of the
    F EMA at the last check against the one ``patience`` checks before, over ``|F|`` then —
    so it holds at any scale of F. Score: ``1 + tolerance − fall`` (> 1 on a plateau).

    ``init = "gradmax"`` (GradMax, Evci et al. 2022): the new channels still read nothing —
    the function is unchanged whatever they write — and their write rows are the top
    singular vectors of the cell's read → write gradient correlation
    (:mod:`morpho.growth.gradmax`), each of norm ``gradmax_scale ×`` the cell's mean
    write-row norm, so that their reads get the largest gradient at once
    (:func:`morpho.edits.widen_edit` ``fanout``). Wide-stream cells only: without the probe
    it proposes nothing.
    """

    to: int = 64  # target d_cell: no event once the cells are this wide
    factor: float = 2.0  # each event widens to min(to, ceil(factor · d_cell))
    patience: int = 2  # checks over which the mean F EMA must have stopped falling
    tolerance: float = 0.02  # "stopped": its relative fall over those checks is below this
    max_fraction: float = 0.3  # no event after this fraction of the training steps
    multiple: int = 1  # the new width is rounded down to a multiple of this (a head's width)
    init: str = "zero"  # new channels' write rows: zero | gradmax (top singular vectors)
    gradmax_scale: float = 1.0  # gradmax: write-row norm relative to the cell's mean

    @property
    def needs_gradient_correlation(self) -> bool:  # type: ignore[override]
        """GradMax reads the scheduler's gradient-correlation probe."""
        return self.init == "gradmax"

    def __post_init__(self) -> None:
        require(self.to >= 2, "growth.widen.to", ">= 2", self.to)
        require(self.factor > 1, "growth.widen.factor", "> 1", self.factor)
        require(self.patience >= 1, "growth.widen.patience", ">= 1", self.patience)
        require(self.tolerance >= 0, "growth.widen.tolerance", ">= 0", self.tolerance)
        require(self.multiple >= 1, "growth.widen.multiple", ">= 1", self.multiple)
        require(self.init in INITS, "growth.widen.init", f"one of {', '.join(INITS)}", self.init)
        require(self.gradmax_scale > 0, "growth.widen.gradmax_scale", "> 0", self.gradmax_scale)
        require(
            0 <= self.max_fraction <= 1, "growth.widen.max_fraction", "in [0, 1]", self.max_fraction
        )

    def propose(self, view: GrowthView) -> list[Event]:
        d = view.d_cell
        width = min(self.to, math.ceil(self.factor * d)) // self.multiple * self.multiple
        late = view.total_steps and view.step > self.max_fraction * view.total_steps
        if not d or width <= d or late:
            return []
        trend = mean_fe_fall(view, self.patience)
        if trend is None:
            return []  # not enough checks yet
        then, now, fall = trend
        if fall >= self.tolerance:
            return []
        options: dict[str, object] = {"d_cell": width}
        if self.init == "gradmax":
            probe = view.gradient_correlation
            if probe is None:
                return []
            u, norm = probe["directions"], probe["write_norm"]  # (N, D, D), (N,)
            rows = u[:, :, : width - d].transpose(1, 2)  # top singular vectors as rows
            options["fanout"] = self.gradmax_scale * norm.view(-1, 1, 1) * rows
        return [
            Event(
                kind="widen",
                cells=(),
                score=1 + self.tolerance - fall,
                reason=f"mean F EMA {now:.4f} fell {fall:+.2%} over {self.patience} checks "
                f"(< {self.tolerance:.0%}); d_cell {d} -> {width}",
                stats={"fe_mean": now, "fe_then": then, "fall": fall, "d_cell": float(d)},
                options=options,
                replay={"d_cell": width},  # blind: the zero-write widening (no gradient read)
            )
        ]
