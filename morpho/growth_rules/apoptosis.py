"""Apoptosis: a hidden cell whose demon gate stays shut dies, unless it is the last path."""

from __future__ import annotations

from dataclasses import dataclass

from morpho.growth.rule import Event, GrowthView, Rule, require
from morpho.tissue import HIDDEN, io_connected

ORDERS = ("gate", "knockout")


@dataclass(frozen=True)
class Apoptosis(Rule):
    """Gate EMA below ε for `patience` checks → remove the cell (never the last input→output path).

    A cell whose gate never opens has stopped doing the work only it can do; its rows are
    recycled (programmed cell death; dormant units as in ReDo). Shut cells are proposed
    most silent first (at most ``max_deaths`` if set); the scheduler's budgets decide how
    many die (by default a level never shrinks below its size at the start, so deaths make
    room in levels that grew). Score: ``1 − gate/ε``.

    ``order = "knockout"`` ranks the shut cells by what removing each would cost the loss
    now — the rise of the last batch's cross-entropy with the cell knocked out (the
    scheduler's knockout probe, one forward per hidden cell, charged to the FLOP counter) —
    cheapest first (score ``−Δloss``), instead of by gate.
    """

    patience: int = 3  # consecutive checks the gate EMA must stay below epsilon
    epsilon: float = 0.3  # "shut": mean gate activity below this
    bridge: bool = False  # reconnect a → b around the dead cell (a linearisation of it)
    max_deaths: int = 0  # proposals per check, most silent first (0: every shut cell)
    order: str = "gate"  # gate: most silent first | knockout: cheapest loss rise first

    @property
    def needs_knockout(self) -> bool:  # type: ignore[override]
        """Ranking by knockout reads the scheduler's knockout probe."""
        return self.order == "knockout"

    def __post_init__(self) -> None:
        require(self.patience >= 1, "growth.apoptosis.patience", ">= 1", self.patience)
        require(0 <= self.epsilon <= 1, "growth.apoptosis.epsilon", "in [0, 1]", self.epsilon)
        require(self.max_deaths >= 0, "growth.apoptosis.max_deaths", ">= 0", self.max_deaths)
        require(
            self.order in ORDERS,
            "growth.apoptosis.order",
            f"one of {', '.join(ORDERS)}",
            self.order,
        )

    def propose(self, view: GrowthView) -> list[Event]:
        t = view.tissue
        gate = view.cell_history["gate_ema"][:, -self.patience :]  # (N, p); NaN < ε is False
        shut = (gate < self.epsilon).all(1) & (t.role == HIDDEN)
        events: list[Event] = []
        rows = shut.nonzero().flatten().tolist()
        knock = view.knockout if self.order == "knockout" else None
        if self.order == "knockout" and knock is None:
            return []  # no probe on this round: nothing to rank by
        order = knock if knock is not None else gate[:, -1]  # lowest dies first
        for row in sorted(rows, key=lambda r: float(order[r])):
            if self.max_deaths and len(events) >= self.max_deaths:
                break
            if not io_connected(t, dead_cells=[row]):
                continue
            g = float(gate[row, -1])
            reason = f"gate EMA {g:.4f} < ε={self.epsilon:g} for {self.patience} checks"
            score, stats = 1 - g / self.epsilon, {"gate_ema": g}
            if knock is not None:
                dloss = float(knock[row])
                reason += f"; knockout costs {dloss:+.4f} nats, the cheapest left"
                score, stats = -dloss, {**stats, "knockout_dloss": dloss}
            events.append(
                Event(
                    kind="remove",
                    cells=(int(t.cell_id[row]),),
                    score=score,
                    reason=reason,
                    stats=stats,
                    options={"bridge": self.bridge},
                )
            )
        return events
