"""The growth-rule interface, at the bottom of the import graph: events, the view, rules.

    @dataclass(frozen=True)
    class Quiet(Rule):
        '''Surprise EMA below ε → remove the cell.'''
        epsilon: float = 0.05
        def propose(self, view: GrowthView) -> list[Event]: ...

    RULES.register("quiet", Quiet)

A rule reads a :class:`GrowthView` and returns frozen :class:`Event` objects; it never
touches the tissue, the model or the trainer. This module imports only the tissue's data
type and the registry, so rules (``morpho/growth_rules/``) import nothing else of the
engine.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from torch import Tensor
from torch_geometric.data import Data

from morpho.coerce import reject_unknown
from morpho.registry import Registry


@dataclass(frozen=True)
class Event:
    """One proposed topology event. Frozen: rules hand these over and never touch the net.

    Attributes:
        kind: ``split`` | ``insert`` | ``remove`` | ``connect`` | ``disconnect`` | ``widen``
            (the edit builder).
        cells: stable cell ids the event names (``(src, dst)`` for edges; none for ``widen``,
            which changes every cell).
        score: priority; higher wins a conflict (dimensionless margin over the rule's bar).
        reason: one line a person reads in ``events.jsonl``.
        rule: name of the proposing rule.
        edge: stable edge id (``disconnect``), else None.
        stats: the statistics that triggered it.
        options: keyword arguments of the edit builder (``noise``, ``bridge``).
        replay: the edit options a blind control replays on a drawn cell
            (:mod:`morpho.growth.control`), recorded in ``events.jsonl``; JSON values only.
            None: ``options`` themselves, which must then be JSON values. A rule whose
            options are tensors read from the signal (a split direction, GradMax write
            rows) gives here the blind edit of the same kind and size.
    """

    kind: str
    cells: tuple[int, ...]
    score: float
    reason: str
    rule: str = ""
    edge: int | None = None
    stats: Mapping[str, float] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    replay: Mapping[str, Any] | None = None


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
        d_cell: the cells' channel count now; total_steps: the run's training steps (0:
            unknown).
        splitting: each hidden cell's splitting matrix on the last batch
            (:func:`morpho.growth.splitting.splitting_probe`: ``min_eig`` (N,),
            ``direction`` {bank: (N, *row)}, ``theta_norm`` (N,)), or None when no enabled
            rule asked for it.
        gradient_correlation: each cell's read → write gradient correlation
            (:func:`morpho.growth.gradmax.gradient_correlation`: ``correlation`` (N, D, D),
            ``directions`` its left singular vectors, ``write_norm`` (N,)), or None when no
            enabled rule asked for it.
        knockout: (N,) each hidden cell's knockout loss rise on the last batch (the rise of
            its cross-entropy when the cell is knocked out: what removing it costs now;
            :func:`morpho.growth.probes.knockout_dloss`), NaN where not hidden, or None when
            no enabled rule asked for it.
        loss_history: (≤ K, 2) the tissue's training cross-entropy (its surprise at the
            data) at the last checks, oldest first: its EMA, and the peak of a fast EMA
            (a few steps) since the check before.
    """

    step: int
    tissue: Data
    strength: Tensor
    cell_history: Mapping[str, Tensor]
    edge_history: Tensor
    edge_gradient: Tensor | None = None
    d_cell: int = 0
    total_steps: int = 0
    splitting: Mapping[str, Any] | None = None
    gradient_correlation: Mapping[str, Tensor] | None = None
    loss_history: Tensor | None = None
    knockout: Tensor | None = None


class Rule:
    """Template for a growth rule: a frozen dataclass of parameters with ``propose``.

    The class docstring's first line is the rule's law (``morpho rules`` prints it).
    """

    needs_edge_gradient: ClassVar[bool] = False  # ask the scheduler for view.edge_gradient
    needs_splitting: ClassVar[bool] = False  # ask the scheduler for view.splitting
    needs_gradient_correlation: ClassVar[bool] = False  # … for view.gradient_correlation
    needs_knockout: ClassVar[bool] = False  # … for view.knockout

    def propose(self, view: GrowthView) -> list[Event]:
        raise NotImplementedError


RULES: Registry[type[Rule]] = Registry("growth rule", entry_point_group="morpho.growth_rules")


def propose_all(rules: Mapping[str, Rule], view: GrowthView) -> list[Event]:
    """Every rule's proposals, each event stamped with its rule's name."""
    out: list[Event] = []
    for name, rule in rules.items():
        out += [dataclasses.replace(e, rule=e.rule or name) for e in rule.propose(view)]
    return out


def mean_fe_fall(view: GrowthView, patience: int) -> tuple[float, float, float] | None:
    """``(then, now, fall)``: the mean F EMA over the cells alive for the last ``patience``
    checks, ``patience`` checks ago and now, and its relative fall ``(then − now) / |then|``
    (a plateau test that holds at any scale of F); ``None`` before enough checks."""
    fe = view.cell_history["fe_ema"][:, -(patience + 1) :]  # (N, ≤ p + 1)
    seen = ~fe.isnan().any(1)
    if fe.shape[1] <= patience or not bool(seen.any()):
        return None
    then, now = (float(fe[seen, j].mean()) for j in (0, -1))
    return then, now, (then - now) / max(abs(then), 1e-12)


def require(ok: bool, where: str, expected: str, got: Any) -> None:
    """``ValueError`` naming a rule parameter out of range: ``growth.mitosis.patience``."""
    if not ok:
        raise ValueError(f"{where} must be {expected}; got {got!r}")


def rule_law(rule: type) -> str:
    """First line of a rule's class docstring."""
    return (rule.__doc__ or "").strip().splitlines()[0] if rule.__doc__ else ""


def build_rule(name: str, params: Mapping[str, Any]) -> Rule:
    """Instantiate rule ``name`` with ``params``; ``ValueError`` naming a bad parameter."""
    cls = RULES.get(name)
    known: set[str] = set()
    if dataclasses.is_dataclass(cls):
        known = {f.name for f in dataclasses.fields(cls)}
    reject_unknown(params, sorted(known), f"growth.{name}.")
    return cls(**params)
