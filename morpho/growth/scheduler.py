"""The growth scheduler (DESIGN §4): statistics → rule proposals → conflict-free edits → log.

    trainer = Trainer(net, task, cfg.train, run=run, callbacks=[Scheduler(cfg.growth)])

Every step it folds the step's statistics into :class:`~morpho.growth.stats.CellStats`
(on the device, no host sync). Every ``interval`` steps it shows a :class:`GrowthView` to
each rule, resolves the proposals (:mod:`morpho.growth.resolve`), applies each accepted
event's edit with :meth:`Trainer.apply_edit` and logs it; a round with events saves a
snapshot. Rules come from ``RULES`` (``morpho.growth_rules`` entry points; ``morpho rules``).
With ``growth.control`` random or schedule it calls no rule and builds no view: it replays
``growth.control_from``'s events blind (:mod:`morpho.growth.control`).
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
from morpho.growth.control import DRAWS, Recorded, draw_event, plan, read_trace
from morpho.growth.dispatch import cell_stats, edit_for, edit_within, event_record
from morpho.growth.gradmax import gradient_correlation
from morpho.growth.knife import KnifeEntropy
from morpho.growth.probes import edge_gradients, knockout_all, knockout_dloss
from morpho.growth.resolve import Budget, floor_with_new_level, resolve
from morpho.growth.rule import Event, GrowthView, Rule, build_rule, propose_all
from morpho.growth.splitting import splitting_probe
from morpho.growth.stats import CellStats
from morpho.network import Network
from morpho.trainer import Callback, StepResult, Trainer

Batch = tuple[Tensor, Tensor]


class Scheduler(Callback):
    """Runs the growth rules every ``interval`` steps; see the module docstring. ``rules``:
    rule instances by name, replacing the ones ``cfg.rules`` names."""

    def __init__(self, cfg: GrowthConfig, rules: Mapping[str, Rule] | None = None) -> None:
        self.cfg = cfg
        self.trace = read_trace(cfg.control_from) if cfg.control != "none" else None
        if rules is None and self.trace is None:
            rules = {name: build_rule(name, cfg.params.get(name, {})) for name in cfg.rules}
        self.rules = dict(rules or {})  # a control consults no rule
        self.plan: dict[int, list[Recorded]] = {}  # control: step → events to replay there
        self.control_generator = torch.Generator().manual_seed(cfg.seed + 104729)
        self.dropped = 0  # control events no draw could place
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
        """Is ``step`` a growth round (from ``start``, every ``interval``, until ``until``;
        for a control, a step of its plan)?"""
        if self.trace is not None:
            return step in self._plan(total_steps)
        last = self.cfg.until * total_steps
        return self.cfg.start <= step <= last and step % self.cfg.interval == 0

    def _plan(self, total_steps: int) -> dict[int, list[Recorded]]:
        if self.trace is not None and not self.plan:
            end = int(self.cfg.until * total_steps)
            c = self.cfg
            self.plan = plan(self.trace, c.control, c.start, end, c.interval)
        return self.plan

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
        self.stats.update_loss(result.ce)
        if self._due(step, trainer.cfg.steps):
            self.check(trainer, step, result)

    def on_edit(self, trainer: Trainer, edit: Edit) -> None:
        self.stats.load(trainer.net)  # rows moved: re-read the EMAs the edit carried
        if edit.kind == "insert" and self.level_floor.numel():
            t = edit.tissue
            new = int(t.level[t.cell_id == edit.info["new_cells"][0]][0])
            self.level_floor = floor_with_new_level(self.level_floor, new)

    def on_train_end(self, trainer: Trainer, summary: dict[str, Any]) -> None:
        self._flush(trainer.net)  # the final topology's statistics, for the end snapshot
        summary["growth_events"] = dict(self.counts)
        summary["deaths_refused_by_knockout"] = self.refused
        if self.trace is not None:
            summary["control_dropped"] = self.dropped
        if self.knife is not None and self.knife.value is not None:
            summary["repr_entropy"] = float(self.knife.value.mean())

    def _flush(self, net: Network) -> None:  # the EMAs (and KNIFE entropies) into the tissue
        self.stats.flush(net)
        if self.knife is not None:
            self.knife.flush(net)

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
        if self.trace is not None:  # a blind control: the recorded events, no signal read
            records = self.replay_round(trainer, step)
        else:
            view = self.stats.view(net, step, grad, trainer.cfg.steps)
            view = self._probed(view, net, result)
            proposals = propose_all(self.rules, view)
            records = self.apply_round(trainer, proposals, step, result.batch)
        if records and trainer.run is not None:
            meta = {"kind": "growth", "events": [r["kind"] for r in records]}
            snap = trainer.run.save_snapshot(net.snapshot(), step, meta)
            for r in records:
                r["snapshot"] = snap.name
                trainer.run.log_event(r)
        return records

    def _probed(self, view: GrowthView, net: Network, result: StepResult) -> GrowthView:
        """The view with the probes an enabled rule asked for, on the step's batch. The
        splitting probe only serves splits and the knockout probe deaths: at the cell cap (the
        cell floor) none can be accepted, so it is not run (its FLOPs are not spent)."""
        wants = lambda flag: any(getattr(r, flag) for r in self.rules.values())  # noqa: E731
        if result.batch is None:
            return view
        if wants("needs_splitting") and net.tissue.num_nodes < self.cfg.max_cells:
            probe = splitting_probe(net, result.batch, self.generator)
            view = dataclasses.replace(view, splitting=probe)
        if wants("needs_knockout") and net.tissue.num_nodes > self.min_cells:
            view = dataclasses.replace(view, knockout=knockout_all(net, result.batch))
        if wants("needs_gradient_correlation"):
            corr = gradient_correlation(net, result.batch)
            view = dataclasses.replace(view, gradient_correlation=corr)
        return view

    def apply_round(
        self, trainer: Trainer, proposals: list[Event], step: int, batch: Batch | None = None
    ) -> list[dict]:
        """Apply what :func:`resolve` accepts; ``batch``: the step's batch, for the knockout
        test of deaths (None: no test). Returns the applied events' records."""
        limit = self.cfg.max_events_per_round
        return resolve(
            proposals, step, self.cooldown, limit, lambda ev: self._apply(trainer, ev, step, batch)
        )

    def replay_round(self, trainer: Trainer, step: int) -> list[dict[str, Any]]:
        """A control's round: each event its plan holds at ``step``, on drawn cells (drawn
        again when refused, up to ``DRAWS`` times); no rule, no view, no knockout test."""
        records = []
        for ev in self._plan(trainer.cfg.steps).get(step, []):
            for _ in range(DRAWS):
                event = draw_event(trainer.net.tissue, ev, self.control_generator)
                rec = None if event is None else self._apply(trainer, event, step, None)
                if rec is not None:
                    records.append(rec)
                    break
            else:
                self.dropped += 1
        return records

    def within_budget(self, net: Network, edit: Edit) -> bool:
        """False if the edit would grow cells or parameters beyond their budgets, or shrink
        the tissue below ``min_cells`` or a level below its floor."""
        floor = self.level_floor if self.cfg.keep_levels else torch.zeros(0, dtype=torch.long)
        budget = Budget(self.cfg.max_cells, self.min_cells, self.cfg.max_params, floor)
        return edit_within(budget, net, edit)

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
            extra["knockout_dloss"] = knockout_dloss(net, net.row_of(ev.cells[0]), batch)
            if extra["knockout_dloss"] > tolerance:
                self.refused += 1
                return None
        before = {str(c): cell_stats(net, c) for c in ev.cells}
        trainer.apply_edit(edit, self.cfg.policy)
        for c in (*edit.info["cells"], *edit.info["new_cells"]):
            self.cooldown[c] = step + self.cfg.cooldown
        self.counts[edit.kind] += 1
        return event_record(net, ev, edit, step, before, extra, self.cfg.optimizer_state)

    def state_dict(self) -> dict[str, Any]:
        """Plain tensors and ints keyed by stable id; the device EMAs are flushed into the
        tissue first, so a checkpoint of the network taken with it carries them."""
        if self._net is not None:
            self._flush(self._net)
        cooldown = torch.tensor(list(self.cooldown.items()), dtype=torch.long).view(-1, 2)
        return {
            **self.stats.state_dict(),
            **(self.knife.state_dict() if self.knife is not None else {}),
            "cooldown_ids": cooldown[:, 0].clone(),
            "cooldown_until": cooldown[:, 1].clone(),
            "checks": self.checks,
            "min_cells": self.min_cells,
            "level_floor": self.level_floor.clone(),
            "counts": {kind: int(n) for kind, n in self.counts.items()},
            "generator": self.generator.get_state(),
            "control_generator": self.control_generator.get_state(),
            "control_dropped": self.dropped,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.stats.load_state_dict(dict(state))
        if self.knife is not None:
            self.knife.load_state_dict(dict(state))
        ids, until = state["cooldown_ids"].tolist(), state["cooldown_until"].tolist()
        self.cooldown = dict(zip(ids, until, strict=True))
        self.checks, self.min_cells = int(state["checks"]), int(state["min_cells"])
        self.level_floor = state["level_floor"].clone()
        self.counts = Counter(state["counts"])
        self.generator.set_state(state["generator"])
        if "control_generator" in state:  # a checkpoint from before controls has none
            self.control_generator.set_state(state["control_generator"])
            self.dropped = int(state["control_dropped"])
