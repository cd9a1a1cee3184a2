"""GradMax: widen like ``widen``, the new channels' write rows along the largest gradient."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from morpho.growth.gradmax import gradmax_fanout
from morpho.growth.rule import Event, GrowthView, require
from morpho.growth_rules.widen import Widen


@dataclass(frozen=True)
class GradMax(Widen):
    """Widen's plateau test → new channels read nothing and write along the top singular vectors.

    GradMax (Evci et al. 2022): a new channel with zero fan-in leaves the function unchanged
    whatever its fan-out, and the fan-out that makes the fan-in's gradient largest — so
    that the channel starts learning at once instead of from zero — is the top left
    singular vectors of the gradient correlation ``M = Σ g x̂ᵀ`` of the cell's read → write
    path (:mod:`morpho.growth.gradmax`). When :class:`~morpho.growth_rules.widen.Widen`
    would widen, each cell's ``k`` new write rows are its top-``k`` singular vectors, each of
    norm ``scale ×`` the cell's mean write-row norm (:func:`morpho.edits.widen_edit`
    ``fanout``). Wide-stream cells only: without the probe it proposes nothing.
    """

    needs_gradient_correlation: ClassVar[bool] = True

    scale: float = 1.0  # new write rows' norm, relative to the cell's mean write-row norm

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.scale > 0, "growth.gradmax.scale", "> 0", self.scale)

    def propose(self, view: GrowthView) -> list[Event]:
        probe = view.gradient_correlation
        if probe is None:
            return []
        out = []
        for ev in super().propose(view):
            k = int(ev.options["d_cell"]) - view.d_cell
            fanout = gradmax_fanout(probe["correlation"], probe["write_norm"], k, self.scale)
            reason = f"{ev.reason}; GradMax write rows (top-{k} singular vectors)"
            out.append(replace(ev, reason=reason, options={**ev.options, "fanout": fanout}))
        return out
