"""The growth config: the ``[growth]`` table of a run and its ``[growth.<rule>]`` tables.

A typed field of :class:`morpho.config.RunConfig`, filled by the one config coercer
(:mod:`morpho.coerce`, through :meth:`GrowthConfig.from_table`): every rule's parameters
are typed and checked by the rule's own dataclass before a run directory exists.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from morpho.coerce import coerce, reject_unknown
from morpho.growth.control import CONTROLS, read_trace
from morpho.growth.rule import RULES, build_rule
from morpho.optstate import DEFAULT_REWARM, StatePolicy

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
    optimizer_state: str = "asymmetric"  # what an edit's entries' optimizer state holds:
    # exact | asymmetric (new entries: zero moments, optional re-warm) | reset
    # (morpho.optstate); asymmetric by measurement: the daughters of a split diverge
    rewarm_steps: int = DEFAULT_REWARM  # asymmetric: new entries' lr ramps up over these steps
    params: dict[str, dict[str, Any]] = field(default_factory=dict)  # per-rule parameters
    control: str = "none"  # none: the rules decide; random | schedule: a blind replay of
    # control_from's events (same kinds and count; random cells; recorded or evenly spaced
    # steps) that reads no signal (morpho.growth.control)
    control_from: str = ""  # the reference run's events.jsonl a control replays

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
        if self.control not in CONTROLS:
            raise ValueError(
                f"growth.control must be one of {', '.join(CONTROLS)}; got {self.control!r}"
            )
        if (self.control == "none") != (not self.control_from):
            raise ValueError(
                "growth.control_from must name a reference events.jsonl exactly when "
                f"growth.control is random or schedule; got control {self.control!r}, "
                f"control_from {self.control_from!r}"
            )
        if self.control_from:
            read_trace(self.control_from)  # ValueError naming a missing file or a bad line
        _ = self.policy  # ValueError naming a bad optimizer_state or rewarm_steps

    @property
    def policy(self) -> StatePolicy:
        """The optimizer-state policy every applied event uses."""
        try:
            return StatePolicy(self.optimizer_state, self.rewarm_steps)
        except ValueError as e:
            raise ValueError(f"growth.{e}") from None

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> GrowthConfig:
        """Parse a ``[growth]`` table (:meth:`from_table`).

        Raises:
            ValueError: an unknown key (named), a wrong type, an unknown rule or parameter,
                a value out of range.
        """
        return GrowthConfig.from_table(data, "growth.")

    @classmethod
    def from_table(cls, data: Any, where: str) -> GrowthConfig:
        """The ``[growth]`` table: its own keys, and a sub-table per rule whose parameters
        are typed by the rule's dataclass and checked by it (``ValueError`` naming the bad
        one). The coercer calls this for a field typed ``GrowthConfig``."""
        if isinstance(data, GrowthConfig):
            return data
        if not isinstance(data, Mapping):
            raise ValueError(f"{where[:-1]}: expected a table, got {type(data).__name__}")
        fields = {f.name for f in dataclasses.fields(cls)} - {"params"}
        tables = [k for k in data if k in RULES and k not in fields]
        reject_unknown(data, sorted(fields) + RULES.names(), where)
        hints = typing.get_type_hints(cls)
        kwargs = {k: coerce(hints[k], v, f"{where}{k}") for k, v in data.items() if k in fields}
        params = {k: _rule_params(k, data[k], f"{where}{k}.") for k in tables}
        cfg = cls(**kwargs, params=params)
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


def _rule_params(name: str, table: Any, where: str) -> dict[str, Any]:
    """Rule ``name``'s parameters, typed and checked by building the rule once."""
    if not isinstance(table, Mapping):
        raise ValueError(f"{where[:-1]}: expected a table, got {table!r}")
    cls = RULES.get(name)
    known: list[str] = []
    if dataclasses.is_dataclass(cls):
        known = [f.name for f in dataclasses.fields(cls)]
    reject_unknown(table, sorted(known), where)
    hints = typing.get_type_hints(cls)
    typed = {k: coerce(hints[k], v, f"{where}{k}") for k, v in table.items()}
    build_rule(name, typed)
    return typed
