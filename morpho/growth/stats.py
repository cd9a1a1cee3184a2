"""Per-cell statistics of growth: running means on the device and a short history per id.

    stats = CellStats(decay=0.9, history=8)
    stats.load(net)                        # start of training and after every edit
    stats.update(forward_stats, weights)   # every step, no host sync
    stats.flush(net)                       # at a check: write the EMAs into the tissue
    stats.record(net)                      # ... and append them to the per-id histories

The running means live here, on the device; the tissue's ``fe_ema``, ``gate_ema`` and
``surprise_ema`` fields are what edits carry (daughters inherit, the dead are dropped) and
what the rules and the demand read, written at checks and read back after each edit.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from morpho.energy import free_energy, wiring_cost
from morpho.growth.rule import GrowthView
from morpho.network import Network

CELL_STATS = ("fe_ema", "gate_ema", "surprise_ema")  # tissue fields kept here
LOSS_KEYS = ("ema", "fast", "peak")  # the tissue's cross-entropy statistics
FAST_DECAY = 0.5  # per-step decay of the fast cross-entropy EMA (a jump shows in 1-3 steps)


class CellStats:
    """The EMAs of free energy, gate and surprise, and the histories of cells and edges."""

    def __init__(self, decay: float, history: int) -> None:
        self.decay, self.k = decay, history
        self.ema: dict[str, Tensor] = {}  # on the device, aligned with the tissue rows
        self.wiring: Tensor | None = None
        self.fresh = True  # the first statistics replace the tissue's initial EMAs
        self.cells: dict[int, list[tuple[float, ...]]] = {}  # cell id → last K checks
        self.edges: dict[int, list[float]] = {}  # edge id → |strength| at last K checks
        # the tissue's cross-entropy: its EMA (decay ``decay``), a fast EMA (decay
        # FAST_DECAY: a few steps) and the fast one's peak since the last check, on the device
        self.loss: dict[str, Tensor] = {}
        self.losses: list[tuple[float, float]] = []  # (EMA, fast peak) at the last K checks

    def load(self, net: Network) -> None:
        """Read the EMAs the tissue carries (after an edit moved the rows)."""
        device = net.embed.device
        self.ema = {k: net.tissue[k].to(device, torch.float32).clone() for k in CELL_STATS}
        self.wiring = wiring_cost(net.tissue).to(device)

    def update(
        self,
        net: Network,
        forward: dict[str, Tensor],
        weights: dict[str, float],
        extra: dict[str, Tensor] | None = None,
    ) -> None:
        """Fold one forward's statistics (and ``extra`` ones, e.g. KNIFE) into the EMAs."""
        if not self.ema or self.ema["fe_ema"].shape[0] != forward["surprise"].shape[0]:
            self.load(net)
        assert self.wiring is not None
        stats = {**forward, "wiring": self.wiring, **(extra or {})}
        fresh = {
            "fe_ema": free_energy(stats, weights),
            "gate_ema": stats["gate_mean"],
            "surprise_ema": stats["surprise"],
        }
        d = 0.0 if self.fresh else self.decay
        for k, value in fresh.items():
            self.ema[k].mul_(d).add_(value.detach().float(), alpha=1 - d)
        self.fresh = False

    def update_loss(self, ce: Tensor) -> None:
        """Fold one step's cross-entropy (the tissue's surprise at the data) into its EMA."""
        ce = ce.detach().float()
        if not self.loss:
            self.loss = {"ema": ce.clone(), "fast": ce.clone(), "peak": ce.clone()}
            return
        loss = {k: v.to(ce.device) for k, v in self.loss.items()}  # restored: on the host
        loss["ema"].mul_(self.decay).add_(ce, alpha=1 - self.decay)
        loss["fast"].mul_(FAST_DECAY).add_(ce, alpha=1 - FAST_DECAY)
        loss["peak"] = torch.maximum(loss["peak"], loss["fast"])
        self.loss = loss

    def flush(self, net: Network) -> None:
        """Write the device EMAs into the tissue (one sync)."""
        if self.ema and self.ema["fe_ema"].shape[0] == net.tissue.num_nodes:
            for k, v in self.ema.items():
                net.tissue[k] = v.detach().cpu().clone()

    def record(self, net: Network) -> None:
        """Append this check's statistics to the per-id histories; forget the dead."""
        t, k = net.tissue, self.k
        rows = torch.stack([t[name] for name in CELL_STATS], 1).tolist()  # (N, 3)
        self.cells = {
            i: (self.cells.get(i, []) + [tuple(r)])[-k:]
            for i, r in zip(t.cell_id.tolist(), rows, strict=True)
        }
        if self.loss:
            now = (float(self.loss["ema"]), float(self.loss["peak"]))
            self.losses = (self.losses + [now])[-k:]
            self.loss["peak"] = self.loss["fast"].clone()  # a new peak from this check on
        strength = net.banks["strength"].detach().abs().cpu().tolist()
        self.edges = {
            e: (self.edges.get(e, []) + [s])[-k:]
            for e, s in zip(t.edge_id.tolist(), strength, strict=True)
        }

    def cell_history(self, ids: list[int]) -> dict[str, Tensor]:
        """``fe_ema`` / ``gate_ema`` / ``surprise_ema`` → (len(ids), K), oldest first, NaN
        before a cell existed."""
        cells = _padded([self.cells.get(i, []) for i in ids], self.k, len(CELL_STATS))
        return {name: cells[:, :, j] for j, name in enumerate(CELL_STATS)}

    def edge_history(self, ids: list[int]) -> Tensor:
        """(len(ids), K) ``|strength|`` at the last K checks, NaN before an edge's birth."""
        return _padded([[(s,) for s in self.edges.get(e, [])] for e in ids], self.k, 1)[:, :, 0]

    def view(
        self, net: Network, step: int, edge_gradient: Tensor | None, total_steps: int = 0
    ) -> GrowthView:
        """The read-only view the rules get (histories aligned with the current rows)."""
        t = net.tissue
        return GrowthView(
            step=step,
            tissue=t.clone(),
            strength=net.banks["strength"].detach().cpu().clone(),
            cell_history=self.cell_history(t.cell_id.tolist()),
            edge_history=self.edge_history(t.edge_id.tolist()),
            edge_gradient=edge_gradient,
            d_cell=net.cfg.d_cell,
            total_steps=total_steps,
            loss_history=torch.tensor(self.losses).view(-1, 2),
        )

    def state_dict(self) -> dict[str, Any]:
        """Plain tensors keyed by stable id (the EMAs travel in the tissue's fields)."""
        cell_ids, edge_ids = sorted(self.cells), sorted(self.edges)
        return {
            "cell_ids": torch.tensor(cell_ids, dtype=torch.long),
            "cell_history": _padded([self.cells[i] for i in cell_ids], self.k, len(CELL_STATS)),
            "edge_ids": torch.tensor(edge_ids, dtype=torch.long),
            "edge_history": self.edge_history(edge_ids),
            "fresh": int(self.fresh),
            "loss_history": torch.tensor(self.losses).view(-1, 2),
            **{f"loss_{k}": v.detach().cpu() for k, v in self.loss.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        ids, hist = state["cell_ids"].tolist(), state["cell_history"].tolist()
        self.cells = {
            i: [tuple(v) for v in h if not any(map(_isnan, v))]
            for i, h in zip(ids, hist, strict=True)
        }
        edges = [[v for v in r if not _isnan(v)] for r in state["edge_history"].tolist()]
        self.edges = dict(zip(state["edge_ids"].tolist(), edges, strict=True))
        self.fresh = bool(state["fresh"])
        self.losses = [tuple(r) for r in state.get("loss_history", torch.zeros(0, 2)).tolist()]
        self.loss = {k: state[f"loss_{k}"].clone() for k in LOSS_KEYS if f"loss_{k}" in state}


def _padded(rows: list[list[tuple[float, ...]]], k: int, width: int) -> Tensor:
    """(len(rows), k, width), each row's values right-aligned, NaN before them."""
    out = torch.full((len(rows), k, width), math.nan)
    for j, h in enumerate(rows):
        if h:
            out[j, k - len(h) :] = torch.tensor(h)
    return out


def _isnan(v: Any) -> bool:
    return isinstance(v, float) and math.isnan(v)
