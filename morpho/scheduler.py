"""The growth scheduler (DESIGN §4): statistics → rule proposals → conflict-free edits → log.

    growth = GrowthConfig.from_dict(cfg.growth)          # the run config's [growth] table
    trainer = Trainer(net, task, cfg.train, run=run, callbacks=[Scheduler(growth)])

Every step the scheduler folds the last forward's per-cell statistics into exponential
moving averages (free energy, gate, surprise) on the device, without a host sync. Every
``interval`` steps it writes them into the tissue (``fe_ema``, ``gate_ema``,
``surprise_ema``: edits carry them, so daughters inherit and the dead are dropped),
appends them to a short per-id history, shows a read-only :class:`GrowthView` to each
enabled rule, and resolves the proposed :class:`Event` objects: highest score first, at
most one event per cell per round, none on a cell in cooldown, within the budgets on
cells, parameters and events per round. Each accepted event is built by a
``morpho.edits`` builder, applied by :meth:`Trainer.apply_edit` (optimizer state
migrated), and appended to ``events.jsonl``; each round with events saves a snapshot.

Rules live outside the engine (``morpho/growth_rules/``, the ``morpho.growth_rules`` entry-point
group) and are found through :data:`RULES`; list them with ``morpho rules``.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import Data

from morpho import distributed
from morpho.edits import Edit, connect_edit, disconnect_edit, insert_edit, remove_edit, split_edit
from morpho.energy import free_energy, wiring_cost
from morpho.entropy import representation_entropy
from morpho.network import Network
from morpho.output import Capture
from morpho.registry import Registry
from morpho.trainer import Callback, StepResult, Trainer

CELL_STATS = ("fe_ema", "gate_ema", "surprise_ema")  # tissue fields the scheduler maintains


# ------------------------------------------------------------------ rule interface
@dataclass(frozen=True)
class Event:
    """One proposed topology event. Frozen: rules hand these over and never touch the net.

    Attributes:
        kind: ``split`` | ``insert`` | ``remove`` | ``connect`` | ``disconnect`` (the edit builder).
        cells: stable cell ids the event names (``(src, dst)`` for edges).
        score: priority; higher wins a conflict (dimensionless margin over the rule's bar).
        reason: one line a person reads in ``events.jsonl``.
        rule: name of the proposing rule.
        edge: stable edge id (``disconnect``), else None.
        stats: the statistics that triggered it.
        options: keyword arguments of the edit builder (``noise``, ``bridge``).
    """

    kind: str
    cells: tuple[int, ...]
    score: float
    reason: str
    rule: str = ""
    edge: int | None = None
    stats: Mapping[str, float] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GrowthView:
    """What a rule sees at a check; tensors are CPU copies aligned with the tissue rows.

    Attributes:
        step: training step of the check.
        tissue: the tissue (CPU), with ``fe_ema``, ``gate_ema``, ``surprise_ema`` current.
        strength: (E,) edge strengths.
        cell_history: ``fe_ema`` / ``gate_ema`` / ``surprise_ema`` → (N, K) values at the
            last K checks, oldest first, NaN where the cell did not exist yet.
        edge_history: (E, K) ``|strength|`` at the last K checks, NaN before the edge's birth.
        edge_gradient: (N, N) ``|∂L/∂s|`` of a zero-strength edge from row a to row b on the
            last step, or None when no enabled rule asked for it.
    """

    step: int
    tissue: Data
    strength: Tensor
    cell_history: Mapping[str, Tensor]
    edge_history: Tensor
    edge_gradient: Tensor | None = None


class Rule:
    """Template for a growth rule: a frozen dataclass of parameters with ``propose``.

    The class docstring's first line is the rule's law (``morpho rules`` prints it).
    """

    needs_edge_gradient: ClassVar[bool] = False  # ask the scheduler for view.edge_gradient

    def propose(self, view: GrowthView) -> list[Event]:
        raise NotImplementedError


RULES: Registry[type[Rule]] = Registry("growth rule", entry_point_group="morpho.growth_rules")


def rule_law(rule: type) -> str:
    """First line of a rule's class docstring."""
    return (rule.__doc__ or "").strip().splitlines()[0] if rule.__doc__ else ""


def build_rule(name: str, params: Mapping[str, Any]) -> Rule:
    """Instantiate rule ``name`` with ``params``; ``ValueError`` naming a bad parameter."""
    cls = RULES.get(name)
    known: set[str] = set()
    if dataclasses.is_dataclass(cls):
        known = {f.name for f in dataclasses.fields(cls)}
    for key in params:
        if key not in known:
            raise ValueError(
                f"unknown parameter growth.{name}.{key}; "
                f"expected one of: {', '.join(sorted(known))}"
            )
    return cls(**params)


# ------------------------------------------------------------------------- config
ENTROPY_TERMS = ("entropy", "repr_entropy")
DEFAULT_RULES = ("mitosis", "apoptosis", "dendrite", "prune")


@dataclass(frozen=True)
class GrowthConfig:
    """The scheduler and its rules: the ``[growth]`` table and its ``[growth.<rule>]`` tables."""

    enabled: bool = True  # run the scheduler at all
    rules: tuple[str, ...] = DEFAULT_RULES  # enabled rules, by registered name
    interval: int = 25  # steps between checks
    start: int = 50  # first check at this step (statistics settle during warm-up)
    until: float = 0.8  # no rounds after this fraction of train.steps: the last topology trains
    max_cells: int = 20  # no event may grow the tissue beyond this many cells
    min_cells: int = 0  # no event may shrink the tissue below this (0: its size at the start)
    keep_levels: bool = True  # no death shrinks a level below its size at the start
    knockout_tolerance: float = 0.01  # a death is refused if knocking the cell out raises the
    # last batch's cross-entropy by more than this many nats (DESIGN invariant 3); inf: no test
    max_params: int = 0  # … nor beyond this many parameters (0: no limit)
    max_events_per_round: int = 3  # events applied per check
    cooldown: int = 50  # steps a cell named by an event is left alone
    ema_decay: float = 0.9  # per-step decay of the fe / gate / surprise EMAs
    tau: float = 0.1  # temperature: weight of the entropy S in F = U − τS + γW
    entropy_term: str = "entropy"  # S: "entropy" (the gate's) or "repr_entropy" (KNIFE/channel)
    gamma: float = 0.02  # weight of the wiring cost W
    energy_terms: dict[str, float] = field(default_factory=dict)  # extra terms and weights
    history: int = 8  # checks of statistics kept per cell and edge (>= every patience)
    seed: int = 0  # seeds the split noise
    params: dict[str, dict[str, Any]] = field(default_factory=dict)  # per-rule parameters

    def __post_init__(self) -> None:
        checks = {
            "interval": (self.interval >= 1, ">= 1"),
            "start": (self.start >= 0, ">= 0"),
            "until": (0 <= self.until <= 1, "in [0, 1]"),
            "min_cells": (self.min_cells >= 0, ">= 0"),
            "max_cells": (self.max_cells >= 1, ">= 1"),
            "max_params": (self.max_params >= 0, ">= 0"),
            "max_events_per_round": (self.max_events_per_round >= 0, ">= 0"),
            "cooldown": (self.cooldown >= 0, ">= 0"),
            "ema_decay": (0 <= self.ema_decay < 1, "in [0, 1)"),
            "history": (self.history >= 1, ">= 1"),
            "tau": (self.tau >= 0, ">= 0"),
            "gamma": (self.gamma >= 0, ">= 0"),
            "knockout_tolerance": (self.knockout_tolerance >= 0, ">= 0"),
        }
        for name, (ok, expected) in checks.items():
            if not ok:
                raise ValueError(f"growth.{name} must be {expected}; got {getattr(self, name)!r}")
        if self.entropy_term not in ENTROPY_TERMS:
            raise ValueError(
                f"growth.entropy_term must be one of {', '.join(ENTROPY_TERMS)}; "
                f"got {self.entropy_term!r}"
            )
        for name in (*self.rules, *self.params):
            RULES.get(name)  # ValueError listing the registered rules

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> GrowthConfig:
        """Parse a ``[growth]`` table; sub-tables named after rules hold their parameters.

        Raises:
            ValueError: an unknown key (named), a wrong type, an unknown rule or parameter.
        """
        fields = {f.name for f in dataclasses.fields(GrowthConfig)} - {"params"}
        hints = typing.get_type_hints(GrowthConfig)
        kwargs: dict[str, Any] = {}
        params: dict[str, dict[str, Any]] = {}
        for key, value in data.items():
            if key in fields:
                kwargs[key] = _coerce(hints[key], value, f"growth.{key}")
            elif isinstance(value, Mapping) and key in RULES:
                params[key] = dict(value)
            else:
                raise ValueError(
                    f"unknown config key growth.{key!r}; expected one of: "
                    f"{', '.join(sorted(fields) + RULES.names())}"
                )
        cfg = GrowthConfig(**kwargs, params=params)
        for name in cfg.rules:
            build_rule(name, cfg.params.get(name, {}))
        return cfg

    def to_dict(self) -> dict[str, Any]:
        """The resolved table: every field, and every enabled rule's full parameters."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        del out["params"]
        out["rules"] = list(self.rules)
        for name in self.rules:
            out[name] = dataclasses.asdict(build_rule(name, self.params.get(name, {})))  # type: ignore[call-overload]
        return out

    def energy_weights(self) -> dict[str, float]:
        """``F = U − τS + γW`` plus any extra terms."""
        return {
            "internal": 1.0,
            self.entropy_term: -self.tau,
            "wiring": self.gamma,
            **self.energy_terms,
        }


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{where}: expected a list of names, got {value!r}")
        return tuple(value)
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ValueError(f"{where}: expected a table, got {value!r}")
        return {str(k): float(v) for k, v in value.items()}
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise ValueError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value


# ---------------------------------------------------------------------- edits
EDIT_BUILDERS: dict[str, Callable[..., Edit]] = {
    "split": lambda net, ev, gen: split_edit(net, ev.cells[0], generator=gen, **ev.options),
    "insert": lambda net, ev, gen: insert_edit(net, ev.cells[0], **ev.options),
    "remove": lambda net, ev, gen: remove_edit(net, ev.cells[0], **ev.options),
    "connect": lambda net, ev, gen: connect_edit(net, ev.cells[0], ev.cells[1]),
    "disconnect": lambda net, ev, gen: disconnect_edit(net, ev.edge),
}


def edit_for(net: Network, event: Event, generator: torch.Generator | None = None) -> Edit:
    """The edit an event asks for; ``ValueError`` if the engine refuses it."""
    if event.kind not in EDIT_BUILDERS:
        raise ValueError(
            f"unknown event kind {event.kind!r}; expected one of: {', '.join(EDIT_BUILDERS)}"
        )
    return EDIT_BUILDERS[event.kind](net, event, generator)


def params_after(net: Network, edit: Edit) -> int:
    """Parameter count of ``net`` once ``edit`` is applied."""
    banks = sum(len(edit.maps[k]) * v[0].numel() for k, v in net.banks.items() if len(v))
    return net.n_params() - sum(v.numel() for v in net.banks.values()) + banks


def edge_gradients(captured: tuple[Capture, ...], n_levels: int) -> Tensor | None:
    """(N, N) ``|Σ_{B,T} ⟨∂L/∂x_b, y_a⟩|``: the gradient of a zero-strength edge row a → row b,
    from a captured forward (``Output.captured``, one capture per ACT pass) after its
    backward; None if nothing was captured with gradients."""
    if not captured or any(len(c.inputs) != n_levels for c in captured):
        return None
    raw = None
    for cap in captured:  # the edge is shared by every pass: its gradient is their sum
        grads = [x.grad if x.grad is not None else torch.zeros_like(x) for x in cap.inputs]
        g = torch.cat(grads).flatten(1)  # (N, B·T·d)
        y = torch.cat(cap.outputs).flatten(1)  # (N, B·T·d)
        raw = y @ g.T if raw is None else raw + y @ g.T  # (N, N): this rank's batch rows
    assert raw is not None
    distributed.all_reduce_mean_([raw])  # data-parallel: the global batch's gradient
    return raw.abs().cpu()


@torch.no_grad()
def knockout_dloss(net: Network, row: int, batch: tuple[Tensor, Tensor]) -> float:
    """Rise of a batch's cross-entropy when cell ``row`` is knocked out.

    Knocking out = zeroing its outgoing edge strengths and readout weight, which is exactly
    the network after removing it (without bridges); the weights are put back after. Its
    forwards' records are dropped. Averaged over data-parallel ranks so every rank decides
    alike.
    """
    x, y = batch
    strength, readout = net.banks["strength"], net.banks["readout"]
    out = (net.tissue.edge_index[0] == row).nonzero().flatten().to(strength.device)
    saved = strength[out].clone(), readout[row].clone()

    def ce() -> Tensor:
        return F.cross_entropy(net(x).flatten(0, 1), y.flatten())

    base = ce()
    strength[out] = 0.0
    readout[row] = 0.0
    knocked = ce()
    strength[out], readout[row] = saved
    delta = (knocked - base).reshape(1)
    distributed.all_reduce_mean_([delta])
    return float(delta)


# ------------------------------------------------------------------ the scheduler
class Scheduler(Callback):
    """Runs the growth rules every ``interval`` steps; see the module docstring."""

    def __init__(self, cfg: GrowthConfig, rules: Mapping[str, Rule] | None = None) -> None:
        """Args: cfg: the growth config; rules: rule instances by name, replacing the ones
        ``cfg.rules`` names (for tests and programmatic use)."""
        self.cfg = cfg
        if rules is None:
            rules = {name: build_rule(name, cfg.params.get(name, {})) for name in cfg.rules}
        self.rules = dict(rules)
        self.weights = cfg.energy_weights()
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.cell_history: dict[int, list[tuple[float, ...]]] = {}  # cell id → last K checks
        self.edge_history: dict[int, list[float]] = {}  # edge id → |strength| at last K checks
        self.cooldown: dict[int, int] = {}  # cell id → first step it may take part again
        self.checks = 0
        self.min_cells = cfg.min_cells  # resolved at the start of training when 0
        self.level_floor = torch.zeros(0, dtype=torch.long)  # (levels,) cells at the start
        self.counts: Counter[str] = Counter()
        self.refused = 0  # deaths refused by the knockout test
        self._ema: dict[str, Tensor] = {}  # device copies of the tissue's EMA fields
        self._wiring: Tensor | None = None
        self._repr: Tensor | None = None  # (N,) KNIFE entropy of the cells' outputs, if used
        self._fresh = True  # the first statistics replace the tissue's initial EMAs
        self._net: Network | None = None  # the trained network (flushed into checkpoints)

    @property
    def needs_edge_gradient(self) -> bool:
        return any(r.needs_edge_gradient for r in self.rules.values())

    # --------------------------------------------------------------- callback events
    def on_train_start(self, trainer: Trainer) -> None:
        self._net = trainer.net
        self._load(trainer.net)
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
        if "repr_entropy" in self.weights:
            stale = self._repr is None or self._repr.shape[0] != net.tissue.num_nodes
            if stale or step % self.cfg.interval == 0:
                self._repr = self.measure_repr_entropy(net, result.batch[0])
        self._update_ema(net, out.stats)
        if self._due(step, trainer.cfg.steps):
            self.check(trainer, step, result)

    @torch.no_grad()
    def measure_repr_entropy(self, net: Network, x: Tensor) -> Tensor:
        """(N,) KNIFE entropy of every cell's outputs on (up to 8 sequences of) a batch, in
        nats per channel (so that S is on the scale of U and of the gate entropy whatever
        ``d_cell``): one extra no-grad forward, every ``interval`` steps and after each edit.
        """
        outputs = net.run(x[:8], capture=True).captured[-1].outputs  # the last ACT pass
        with torch.enable_grad():
            value = representation_entropy(outputs, generator=self.generator)
        value = (value / outputs[0].shape[-1]).detach()
        distributed.all_reduce_mean_([value])  # every rank decides from the same F
        return value

    def _due(self, step: int, total_steps: int) -> bool:
        """Is ``step`` a growth round (from ``start``, every ``interval``, until ``until``)?"""
        last = self.cfg.until * total_steps
        return self.cfg.start <= step <= last and step % self.cfg.interval == 0

    def on_edit(self, trainer: Trainer, edit: Edit) -> None:
        self._load(trainer.net)  # rows moved: re-read the EMAs the edit carried
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
        if self._repr is not None:
            summary["repr_entropy"] = float(self._repr.mean())

    # ------------------------------------------------------------------ statistics
    def _load(self, net: Network) -> None:
        device = net.embed.device
        self._ema = {k: net.tissue[k].to(device, torch.float32).clone() for k in CELL_STATS}
        self._wiring = wiring_cost(net.tissue).to(device)

    def _update_ema(self, net: Network, forward_stats: dict[str, Tensor]) -> None:
        if not self._ema or self._ema["fe_ema"].shape[0] != forward_stats["surprise"].shape[0]:
            self._load(net)
        assert self._wiring is not None
        stats = {**forward_stats, "wiring": self._wiring}
        if self._repr is not None:
            stats["repr_entropy"] = self._repr.to(self._wiring.device)
        fresh = {
            "fe_ema": free_energy(stats, self.weights),
            "gate_ema": stats["gate_mean"],
            "surprise_ema": stats["surprise"],
        }
        d = 0.0 if self._fresh else self.cfg.ema_decay
        for k, value in fresh.items():
            self._ema[k].mul_(d).add_(value.detach().float(), alpha=1 - d)
        self._fresh = False

    def _flush(self, net: Network) -> None:
        """Write the device EMAs (and the last KNIFE entropies) into the tissue (one sync)."""
        if self._ema and self._ema["fe_ema"].shape[0] == net.tissue.num_nodes:
            for k, v in self._ema.items():
                net.tissue[k] = v.detach().cpu().clone()
        if self._repr is not None and self._repr.shape[0] == net.tissue.num_nodes:
            net.tissue["repr_entropy"] = self._repr.detach().cpu().float().clone()

    def _record(self, net: Network) -> None:
        """Append this check's statistics to the per-id histories; forget the dead."""
        t, k = net.tissue, self.cfg.history
        ids = t.cell_id.tolist()
        rows = torch.stack([t[name] for name in CELL_STATS], 1).tolist()  # (N, 3)
        self.cell_history = {
            i: (self.cell_history.get(i, []) + [tuple(r)])[-k:]
            for i, r in zip(ids, rows, strict=True)
        }
        strength = net.banks["strength"].detach().abs().cpu().tolist()
        edge_ids = t.edge_id.tolist()
        self.edge_history = {
            e: (self.edge_history.get(e, []) + [s])[-k:]
            for e, s in zip(edge_ids, strength, strict=True)
        }
        self.cooldown = {c: until for c, until in self.cooldown.items() if c in set(ids)}

    def view(self, net: Network, step: int, edge_gradient: Tensor | None = None) -> GrowthView:
        """The read-only view the rules get (histories aligned with the current rows)."""
        t, k = net.tissue, self.cfg.history
        cells = torch.full((t.num_nodes, k, len(CELL_STATS)), math.nan)
        for row, i in enumerate(t.cell_id.tolist()):
            h = self.cell_history.get(i, [])
            if h:
                cells[row, k - len(h) :] = torch.tensor(h)
        edges = torch.full((t.edge_index.shape[1], k), math.nan)
        for row, e in enumerate(t.edge_id.tolist()):
            he = self.edge_history.get(e, [])
            if he:
                edges[row, k - len(he) :] = torch.tensor(he)
        return GrowthView(
            step=step,
            tissue=t.clone(),
            strength=net.banks["strength"].detach().cpu().clone(),
            cell_history={name: cells[:, :, j] for j, name in enumerate(CELL_STATS)},
            edge_history=edges,
            edge_gradient=edge_gradient,
        )

    # ------------------------------------------------------------------- one round
    def check(self, trainer: Trainer, step: int, result: StepResult) -> list[dict[str, Any]]:
        """One growth round at ``step``, after the training step ``result``: propose,
        resolve, apply, log. Returns the records."""
        net = trainer.net
        self._flush(net)
        grad = None
        if self.needs_edge_gradient and result.output is not None:
            grad = edge_gradients(result.output.captured, len(net.plan))
        self._record(net)
        self.checks += 1
        view = self.view(net, step, grad)
        proposals = []
        for name, rule in self.rules.items():
            proposals += [dataclasses.replace(e, rule=e.rule or name) for e in rule.propose(view)]
        records = self.apply_round(trainer, proposals, step, result.batch)
        if records and trainer.run is not None:
            snap = trainer.run.save_snapshot(
                net.snapshot(), step, {"kind": "growth", "events": [r["kind"] for r in records]}
            )
            for r in records:
                r["snapshot"] = snap.name
                trainer.run.log_event(r)
        return records

    def apply_round(
        self,
        trainer: Trainer,
        proposals: list[Event],
        step: int,
        batch: tuple[Tensor, Tensor] | None = None,
    ) -> list[dict]:
        """Apply proposals highest score first: one event per cell, none on a cell in
        cooldown, within the budgets, at most ``max_events_per_round``. Returns the records
        of the applied events (a proposal the engine refuses is skipped). ``batch``: the
        step's batch, for the knockout test of deaths (None: no test)."""
        taken: set[int] = set()
        records: list[dict[str, Any]] = []
        for ev in sorted(proposals, key=lambda e: -e.score):
            if len(records) >= self.cfg.max_events_per_round:
                break
            cells = set(ev.cells)
            if cells & taken or any(self.cooldown.get(c, -1) > step for c in cells):
                continue
            record = self._apply(trainer, ev, step, batch)
            if record is not None:
                taken |= cells | set(record["new_cells"])
                records.append(record)
        return records

    def within_budget(self, net: Network, edit: Edit) -> bool:
        """False if the edit would grow cells or parameters beyond their budgets, or shrink
        the tissue below ``min_cells`` (deaths then only make room for births)."""
        n_before, n_after = net.tissue.num_nodes, edit.tissue.num_nodes
        if n_after > n_before and n_after > self.cfg.max_cells:
            return False
        if n_after < n_before and n_after < self.min_cells:
            return False
        if n_after < n_before and self.cfg.keep_levels and self.level_floor.numel():
            floor = self.level_floor
            sizes = torch.bincount(edit.tissue.level, minlength=floor.numel())[: floor.numel()]
            if bool((sizes < floor).any()):
                return False
        if self.cfg.max_params:
            before, after = net.n_params(), params_after(net, edit)
            if after > before and after > self.cfg.max_params:
                return False
        return True

    def _apply(
        self, trainer: Trainer, ev: Event, step: int, batch: tuple[Tensor, Tensor] | None
    ) -> dict[str, Any] | None:
        net = trainer.net
        try:
            edit = edit_for(net, ev, self.generator)
        except ValueError:  # refused by the engine (e.g. an earlier event cut the last path)
            return None
        if not self.within_budget(net, edit):
            return None
        extra: dict[str, float] = {}
        if (
            edit.kind == "remove"
            and math.isfinite(self.cfg.knockout_tolerance)
            and batch is not None
        ):
            dloss = knockout_dloss(net, net.row_of(ev.cells[0]), batch)
            if dloss > self.cfg.knockout_tolerance:
                self.refused += 1
                return None
            extra["knockout_dloss"] = dloss
        stats = {str(c): self._cell_stats(net, c) for c in ev.cells}
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

    @staticmethod
    def _cell_stats(net: Network, cell_id: int) -> dict[str, float]:
        r = net.row_of(cell_id)
        out = {k: float(net.tissue[k][r]) for k in CELL_STATS}
        out["level"] = int(net.tissue.level[r])
        return out

    # ------------------------------------------------------------- checkpointing
    def state_dict(self) -> dict[str, Any]:
        """Plain tensors and ints: histories and cooldowns keyed by stable id.

        The device EMAs are flushed into the tissue first, so a checkpoint of the network
        taken with this state carries them (``on_train_start`` reads them back).
        """
        if self._net is not None:
            self._flush(self._net)
        k = self.cfg.history
        cell_ids = sorted(self.cell_history)
        cells = torch.full((len(cell_ids), k, len(CELL_STATS)), math.nan)
        for j, i in enumerate(cell_ids):
            h = self.cell_history[i]
            cells[j, k - len(h) :] = torch.tensor(h)
        edge_ids = sorted(self.edge_history)
        edges = torch.full((len(edge_ids), k), math.nan)
        for j, e in enumerate(edge_ids):
            he = self.edge_history[e]
            edges[j, k - len(he) :] = torch.tensor(he)
        return {
            "cell_ids": torch.tensor(cell_ids, dtype=torch.long),
            "cell_history": cells,
            "edge_ids": torch.tensor(edge_ids, dtype=torch.long),
            "edge_history": edges,
            "cooldown_ids": torch.tensor(list(self.cooldown), dtype=torch.long),
            "cooldown_until": torch.tensor(list(self.cooldown.values()), dtype=torch.long),
            "checks": self.checks,
            "fresh": int(self._fresh),
            "min_cells": self.min_cells,
            "level_floor": self.level_floor.clone(),
            "counts": {kind: int(n) for kind, n in self.counts.items()},
            "generator": self.generator.get_state(),
            "repr": torch.zeros(0) if self._repr is None else self._repr.detach().cpu().clone(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        def rows(x: Tensor) -> list[Any]:
            return [[v for v in r if not _isnan(v)] for r in x.tolist()]

        ids, hist = state["cell_ids"].tolist(), state["cell_history"].tolist()
        self.cell_history = {
            i: [tuple(v) for v in h if not any(map(_isnan, v))]
            for i, h in zip(ids, hist, strict=True)
        }
        self.edge_history = dict(
            zip(state["edge_ids"].tolist(), rows(state["edge_history"]), strict=True)
        )
        self.cooldown = dict(
            zip(state["cooldown_ids"].tolist(), state["cooldown_until"].tolist(), strict=True)
        )
        self.checks = int(state["checks"])
        self.min_cells = int(state.get("min_cells", self.min_cells))
        self.level_floor = state.get("level_floor", self.level_floor).clone()
        self._fresh = bool(state["fresh"])
        self.counts = Counter(state.get("counts", {}))
        if "generator" in state:
            self.generator.set_state(state["generator"])
        if "repr" in state and state["repr"].numel():  # the last KNIFE entropies (S term)
            self._repr = state["repr"].clone()


def _isnan(v: Any) -> bool:
    return isinstance(v, float) and math.isnan(v)
