"""The growth scheduler (DESIGN §4): statistics → rule proposals → conflict-free edits → log.

    trainer = Trainer(net, task, cfg.train, run=run, callbacks=[Scheduler(cfg.growth)])

Every step it folds the step's per-cell statistics into running means on the device
(:class:`~morpho.growth.stats.CellStats`, no host sync). Every ``interval`` steps it writes
them into the tissue, shows a read-only :class:`GrowthView` to each enabled rule, resolves
the proposals (:func:`~morpho.growth.resolve.resolve`: highest score first, one event per
cell, cooldowns, the budgets), builds each accepted event's edit, applies it with
:meth:`Trainer.apply_edit` (optimizer state migrated), and appends it to ``events.jsonl``;
each round with events saves a snapshot. Rules are found through ``RULES`` (the
``morpho.growth_rules`` entry-point group); list them with ``morpho rules``.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from morpho.edits import Edit
from morpho.growth.config import GrowthConfig
from morpho.growth.dispatch import edit_for, params_after
from morpho.growth.knife import KnifeEntropy
from morpho.growth.probes import edge_gradients, knockout_dloss
from morpho.growth.resolve import Budget, resolve
from morpho.growth.rule import Event, GrowthView, Rule, build_rule
from morpho.growth.stats import CELL_STATS, CellStats
from morpho.network import Network
from morpho.trainer import Callback, StepResult, Trainer

Batch = tuple[Tensor, Tensor]


class Scheduler(Callback):
    """Runs the growth rules every ``interval`` steps; see the module docstring.

    Args:
        cfg: the growth config.
        rules: rule instances by name, replacing the ones ``cfg.rules`` names.
    """

    def __init__(self, cfg: GrowthConfig, rules: Mapping[str, Rule] | None = None) -> None:
        self.cfg = cfg
        if rules is None:
            rules = {name: build_rule(name, cfg.params.get(name, {})) for name in cfg.rules}
        self.rules = dict(rules)
        self.weights = cfg.energy_weights()
        self.generator = torch.Generator().manual_seed(cfg.seed)  # split noise and KNIFE draws
        self.stats = CellStats(cfg.ema_decay, cfg.history)
        self.knife = KnifeEntropy(self.generator) if "repr_entropy" in self.weights else None
        self.cooldown: dict[int, int] = {}  # cell id → first step it may take part again
        self.checks, self.refused = 0, 0  # rounds run; deaths refused by the knockout test
        self.min_cells = cfg.min_cells  # resolved at the start of training when 0
        self.level_floor = torch.zeros(0, dtype=torch.long)  # (levels,) cells at the start
        self.counts: Counter[str] = Counter()
        self._net: Network | None = None  # the trained network (flushed into checkpoints)

    @property
    def needs_edge_gradient(self) -> bool:
        return any(r.needs_edge_gradient for r in self.rules.values())

    def _due(self, step: int, total_steps: int) -> bool:
        """Is ``step`` a growth round (from ``start``, every ``interval``, until ``until``)?"""
        last = self.cfg.until * total_steps
        return self.cfg.start <= step <= last and step % self.cfg.interval == 0

    # --------------------------------------------------------------- callback events
    def on_train_start(self, trainer: Trainer) -> None:
        self._net = trainer.net
        self.stats.load(trainer.net)
        self.min_cells = self.min_cells or trainer.net.tissue.num_nodes
        if self.level_floor.numel() == 0:
            self.level_floor = torch.bincount(trainer.net.tissue.level)

    def wants_capture(self, trainer: Trainer, step: int) -> bool:
        """Capture the step whose end is a growth round, when a rule needs edge gradients."""
        return self.needs_edge_gradient and self._due(step + 1, trainer.cfg.steps)

    def on_step_end(self, trainer: Trainer, step: int, result: StepResult) -> None:
        net, out = trainer.net, result.output
        if not self.cfg.enabled or out is None:
            return
        extra = {}
        if self.knife is not None:
            self.knife.refresh(net, result.batch[0], step, self.cfg.interval)
            extra = self.knife.stats(net.embed.device)
        self.stats.update(net, out.stats, self.weights, extra)
        if self._due(step, trainer.cfg.steps):
            self.check(trainer, step, result)

    def on_edit(self, trainer: Trainer, edit: Edit) -> None:
        self.stats.load(trainer.net)  # rows moved: re-read the EMAs the edit carried
        if edit.kind == "insert" and self.level_floor.numel():
            # a new level went in and every level above moved up one: so do their floors
            t = edit.tissue
            new = int(t.level[t.cell_id == edit.info["new_cells"][0]][0])
            floor = self.level_floor
            self.level_floor = torch.cat([floor[:new], floor.new_zeros(1), floor[new:]])

    def on_train_end(self, trainer: Trainer, summary: dict[str, Any]) -> None:
        self._flush(trainer.net)
        summary["growth_events"] = dict(self.counts)
        summary["deaths_refused_by_knockout"] = self.refused
        if self.knife is not None and self.knife.value is not None:
            summary["repr_entropy"] = float(self.knife.value.mean())

    def _flush(self, net: Network) -> None:
        self.stats.flush(net)
        if self.knife is not None:
            self.knife.flush(net)

    # ------------------------------------------------------------------- one round
    def view(self, net: Network, step: int, edge_gradient: Tensor | None = None) -> GrowthView:
        """The read-only view the rules get (histories aligned with the current rows)."""
        t = net.tissue
        return GrowthView(
            step=step,
            tissue=t.clone(),
            strength=net.banks["strength"].detach().cpu().clone(),
            cell_history=self.stats.cell_history(t.cell_id.tolist()),
            edge_history=self.stats.edge_history(t.edge_id.tolist()),
            edge_gradient=edge_gradient,
        )

    def check(self, trainer: Trainer, step: int, result: StepResult) -> list[dict[str, Any]]:
        """One growth round at ``step``, after the training step ``result``: propose,
        resolve, apply, log. Returns the records."""
        net = trainer.net
        self._flush(net)
        grad = None
        if self.needs_edge_gradient and result.output is not None:
            grad = edge_gradients(result.output.captured, len(net.plan))
        self.stats.record(net)
        live = set(net.tissue.cell_id.tolist())
        self.cooldown = {c: until for c, until in self.cooldown.items() if c in live}
        self.checks += 1
        view = self.view(net, step, grad)
        proposals = []
        for name, rule in self.rules.items():
            proposals += [dataclasses.replace(e, rule=e.rule or name) for e in rule.propose(view)]
        records = self.apply_round(trainer, proposals, step, result.batch)
        if records and trainer.run is not None:
            meta = {"kind": "growth", "events": [r["kind"] for r in records]}
            snap = trainer.run.save_snapshot(net.snapshot(), step, meta)
            for r in records:
                r["snapshot"] = snap.name
                trainer.run.log_event(r)
        return records

    def apply_round(
        self, trainer: Trainer, proposals: list[Event], step: int, batch: Batch | None = None
    ) -> list[dict]:
        """Apply what :func:`resolve` accepts; ``batch``: the step's batch, for the knockout
        test of deaths (None: no test). Returns the applied events' records."""
        return resolve(
            proposals,
            step,
            self.cooldown,
            self.cfg.max_events_per_round,
            lambda ev: self._apply(trainer, ev, step, batch),
        )

    def within_budget(self, net: Network, edit: Edit) -> bool:
        """False if the edit would grow cells or parameters beyond their budgets, or shrink
        the tissue below ``min_cells`` or a level below its floor."""
        floor = self.level_floor if self.cfg.keep_levels else torch.zeros(0, dtype=torch.long)
        budget = Budget(self.cfg.max_cells, self.min_cells, self.cfg.max_params, floor)
        params = (net.n_params(), params_after(net, edit)) if self.cfg.max_params else (0, 0)
        n = net.tissue.num_nodes, edit.tissue.num_nodes
        return budget.allows(*n, edit.tissue.level, params)

    def _apply(
        self, trainer: Trainer, ev: Event, step: int, batch: Batch | None
    ) -> dict[str, Any] | None:
        net = trainer.net
        try:
            edit = edit_for(net, ev, self.generator)
        except ValueError:  # refused by the engine (e.g. an earlier event cut the last path)
            return None
        if not self.within_budget(net, edit):
            return None
        extra: dict[str, float] = {}
        tolerance = self.cfg.knockout_tolerance
        if edit.kind == "remove" and math.isfinite(tolerance) and batch is not None:
            dloss = knockout_dloss(net, net.row_of(ev.cells[0]), batch)
            if dloss > tolerance:
                self.refused += 1
                return None
            extra["knockout_dloss"] = dloss
        stats = {str(c): _cell_stats(net, c) for c in ev.cells}
        trainer.apply_edit(edit)
        info = edit.info
        for c in (*info["cells"], *info["new_cells"]):
            self.cooldown[c] = step + self.cfg.cooldown
        self.counts[edit.kind] += 1
        return {
            "step": step,
            "kind": edit.kind,
            "rule": ev.rule,
            **info,
            "reason": ev.reason,
            "score": ev.score,
            "stats": {**ev.stats, **extra},
            "cell_stats": stats,
            "free_energy": [s["fe_ema"] for s in stats.values()],
            "n_cells": net.tissue.num_nodes,
            "n_edges": int(net.tissue.edge_index.shape[1]),
            "n_params": net.n_params(),
        }

    # ------------------------------------------------------------- checkpointing
    def state_dict(self) -> dict[str, Any]:
        """Plain tensors and ints keyed by stable id; the device EMAs are flushed into the
        tissue first, so a checkpoint of the network taken with it carries them."""
        if self._net is not None:
            self._flush(self._net)
        return {
            **self.stats.state_dict(),
            **(self.knife.state_dict() if self.knife is not None else {}),
            "cooldown_ids": torch.tensor(list(self.cooldown), dtype=torch.long),
            "cooldown_until": torch.tensor(list(self.cooldown.values()), dtype=torch.long),
            "checks": self.checks,
            "min_cells": self.min_cells,
            "level_floor": self.level_floor.clone(),
            "counts": {kind: int(n) for kind, n in self.counts.items()},
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.stats.load_state_dict(dict(state))
        if self.knife is not None:
            self.knife.load_state_dict(dict(state))
        ids, until = state["cooldown_ids"].tolist(), state["cooldown_until"].tolist()
        self.cooldown = dict(zip(ids, until, strict=True))
        self.checks = int(state["checks"])
        self.min_cells = int(state.get("min_cells", self.min_cells))
        self.level_floor = state.get("level_floor", self.level_floor).clone()
        self.counts = Counter(state.get("counts", {}))
        if "generator" in state:
            self.generator.set_state(state["generator"])


def _cell_stats(net: Network, cell_id: int) -> dict[str, float]:
    r = net.row_of(cell_id)
    out = {k: float(net.tissue[k][r]) for k in CELL_STATS}
    out["level"] = int(net.tissue.level[r])
    return out
