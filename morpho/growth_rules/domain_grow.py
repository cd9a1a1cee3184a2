"""Domain growth: when surprise jumps across the tissue, new cells are born in series for it."""

from __future__ import annotations

from dataclasses import dataclass

from morpho.growth.rule import Event, GrowthView, Rule, require
from morpho.tissue import OUTPUT

SIGNALS = ("loss", "surprise")


@dataclass(frozen=True)
class DomainGrow(Rule):
    """Surprise EMA jumps ≥ `ratio`× over `window` checks → `per_jump` cells in series.

    A new domain (a shift of the input distribution, announced to no one) shows as
    surprise rising across the tissue at once, where learning lowers it. Which surprise
    (``signal``): ``"loss"`` — the tissue's surprise at the data, its training
    cross-entropy (the accuracy term of the variational free energy): the peak of its fast
    EMA since the last check against its EMA over the checks before (the network adapts
    to a new domain within a few steps, so a slow EMA never shows the jump); ``"surprise"`` — the
    mean of the cells' own U (their next-input prediction error), which on language domains
    rises only ≈1.07× at a boundary, inside its noise (benchmarks/continual.md). At a
    jump (the test of :class:`TaskChange`: the EMA at the latest check against its mean
    over the ``window`` checks before), new cells
    are born in series after the ``per_jump`` cells whose surprise rose most, each the
    identity at birth (:func:`morpho.edits.insert_edit`: LLaMA Pro's block expansion, Wu et
    al. 2024, where new blocks learn a new domain while the old ones are kept), and each
    records the domain it was born for (``tissue.task``: one more than the newest so far).
    A plasticity policy (``[plasticity]``, :mod:`morpho.plasticity`) then lowers the
    learning rate of the cells born for earlier domains, so old skills stay in old cells.
    No second jump is read within ``refractory`` steps of the newest birth (the surprise
    EMA is still climbing to the new domain's level then). Score: the jump's ratio.

    ``known`` > 0 is the control of the trigger: the same births at the first check at or
    after each multiple of ``known`` steps (the known domain boundaries), no signal read.
    """

    ratio: float = 1.15  # jump over the recent level that fires (stationary: ≤ 1.04)
    window: int = 2  # checks the recent level is averaged over
    per_jump: int = 1  # cells born in series at a jump (after different cells)
    refractory: int = 100  # steps after the newest birth in which no jump is read
    known: int = 0  # > 0: grow at every multiple of this many steps instead (a control)
    signal: str = "loss"  # "loss": the tissue's cross-entropy EMA; "surprise": cells' mean U

    def __post_init__(self) -> None:
        require(self.ratio > 1, "growth.domain_grow.ratio", "> 1", self.ratio)
        require(self.window >= 1, "growth.domain_grow.window", ">= 1", self.window)
        require(self.per_jump >= 1, "growth.domain_grow.per_jump", ">= 1", self.per_jump)
        require(self.refractory >= 0, "growth.domain_grow.refractory", ">= 0", self.refractory)
        require(self.known >= 0, "growth.domain_grow.known", ">= 0", self.known)
        require(
            self.signal in SIGNALS, "growth.domain_grow.signal", " or ".join(SIGNALS), self.signal
        )

    def propose(self, view: GrowthView) -> list[Event]:
        t = view.tissue
        s = view.cell_history["surprise_ema"][:, -(self.window + 1) :]  # (N, ≤ w + 1)
        seen = ~s.isnan().any(1)
        if s.shape[1] <= self.window or not bool(seen.any()):
            return []
        before, now = float(s[seen, :-1].mean()), float(s[seen, -1].mean())
        if self.signal == "loss":  # the fast peak since the last check against the EMA
            loss = view.loss_history
            if loss is None or len(loss) <= self.window:
                return []
            before, now = float(loss[-(self.window + 1) : -1, 0].mean()), float(loss[-1, 1])
        if self.known:
            end = view.total_steps and view.step >= view.total_steps  # no domain follows
            if end or view.step // self.known <= int(t.task.max()):
                return []
            why = f"step {view.step} is past the known boundary {view.step // self.known}"
        else:
            if int(t.task.max()) > 0 and view.step - int(t.birth.max()) < self.refractory:
                return []
            if before <= 0 or now < self.ratio * before:
                return []
            what = "cross-entropy peak" if self.signal == "loss" else "mean surprise EMA"
            why = (
                f"{what} {now:.3f} is {now / before:.2f}× its EMA {before:.3f} "
                f"over {self.window} checks"
            )
        rise = s[:, -1] / s[:, :-1].mean(1).clamp(min=1e-12)  # (N,) each cell's own jump
        feeds = t.edge_index[0].unique()
        rows = [int(r) for r in feeds if bool(seen[r]) and int(t.role[r]) != OUTPUT]
        rows = sorted(rows, key=lambda r: -float(rise[r]))[: self.per_jump]
        domain = int(t.task.max()) + 1
        return [
            Event(
                kind="insert",
                cells=(int(t.cell_id[r]),),
                score=now / max(before, 1e-12),
                reason=f"{why}: a cell for domain {domain} is born after this one (its "
                f"surprise rose {float(rise[r]):.2f}×)",
                stats={"surprise_now": now, "surprise_before": before, "domain": domain},
                options={"task": domain},
            )
            for r in rows
        ]
