"""Blind controls of growth: a reference run's event trace replayed without reading a signal.

    [growth]
    control = "random"                          # or "schedule"; "none": the rules decide
    control_from = "runs/grown/events.jsonl"    # the reference run's trace

A control run makes the same growth events as a reference run — as many, of the same kinds
(``split``, ``insert``, ``remove``, ``connect``, ``disconnect``, ``widen``), with the same
edit options (a widening's width, a split's noise) — but nothing of the network decides
them; whatever rule proposed the recorded events:

* ``random``: each recorded event at its recorded step, on cells (or an edge) drawn
  uniformly at random, seeded by ``growth.seed``;
* ``schedule``: the recorded events, in their order, at evenly spaced steps over the growth
  window ``[start, until · steps]`` — the i-th of n (from 0) at
  ``start + (i + 1) · (end − start) / (n + 1)``, rounded down to a multiple of ``interval``
  and not before ``start`` — on cells drawn as for ``random``.

What a drawn event may name (the choices the signal rules make among): ``split`` and
``remove`` a hidden cell; ``insert`` a hidden cell with an edge out (its outputs go to the
newborn); ``connect`` a pair ``(a, b)`` with ``a`` on a lower level than ``b`` and no edge
``a → b``; ``disconnect`` an edge; ``widen`` nothing (every cell widens, so a ``random``
replay of widenings is the reference run itself: only ``schedule`` moves them). A draw the
engine or a budget refuses is drawn again, up to :data:`DRAWS` times, then dropped (the
run's summary counts the drops).

Neither control reads the free energy, a gate or any statistic to decide: the scheduler
builds no view, calls no rule and puts no death to the knockout test (which reads the
loss). The statistics are still folded and recorded, so the run directory reads as any
other.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch_geometric.data import Data

from morpho.growth.rule import Event
from morpho.tissue import HIDDEN

CONTROLS = ("none", "random", "schedule")
KINDS = ("split", "insert", "remove", "connect", "disconnect", "widen")
DRAWS = 20  # draws of an event's cells before it is dropped


@dataclass(frozen=True)
class Recorded:
    """One event of a reference trace: when, what, with which edit options."""

    step: int
    kind: str
    rule: str = ""
    options: dict[str, Any] = field(default_factory=dict)


def options_of(record: dict[str, Any]) -> dict[str, Any]:
    """The edit options of an ``events.jsonl`` line (a trace written before lines carried
    them: a widening's width from ``new_width``, else the builder's defaults)."""
    if "options" in record:
        return dict(record["options"])
    return {"d_cell": int(record["new_width"])} if record["kind"] == "widen" else {}


def read_trace(path: str | Path) -> tuple[Recorded, ...]:
    """The growth events of a run's ``events.jsonl``, in order.

    Raises:
        ValueError: the file is missing or unreadable, or a line is not a growth event.
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"growth.control_from: {str(p)!r} is not a file; expected an events.jsonl")
    out = []
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            ev = Recorded(int(rec["step"]), str(rec["kind"]), str(rec.get("rule", "")))
        except (ValueError, KeyError, TypeError):
            raise ValueError(
                f"growth.control_from: line {n} of {str(p)!r} is not a growth event; "
                "expected a JSON object with 'step' and 'kind'"
            ) from None
        if ev.kind not in KINDS:
            raise ValueError(
                f"growth.control_from: line {n} of {str(p)!r} has kind {ev.kind!r}; "
                f"expected one of: {', '.join(KINDS)}"
            )
        out.append(Recorded(ev.step, ev.kind, ev.rule, options_of(rec)))
    return tuple(out)


def schedule_steps(n: int, start: int, end: int, interval: int) -> list[int]:
    """``n`` evenly spaced steps in ``[start, end]``: the i-th at
    ``start + (i + 1)(end − start)/(n + 1)``, rounded down to a multiple of ``interval``
    and not before ``start``."""
    steps = [start + (i + 1) * (end - start) // (n + 1) for i in range(n)]
    return [max(start, s // interval * interval) for s in steps]


def plan(
    trace: tuple[Recorded, ...], control: str, start: int, end: int, interval: int
) -> dict[int, list[Recorded]]:
    """The steps a control makes each recorded event at: ``random`` the recorded ones,
    ``schedule`` :func:`schedule_steps` over ``[start, end]``."""
    if control not in CONTROLS[1:]:
        raise ValueError(f"growth.control must be one of {', '.join(CONTROLS[1:])} to replay")
    if control == "random":
        steps = [ev.step for ev in trace]
    else:
        steps = schedule_steps(len(trace), start, end, interval)
    out: dict[int, list[Recorded]] = defaultdict(list)
    for s, ev in zip(steps, trace, strict=True):
        out[s].append(ev)
    return dict(out)


def _pick(n: int, gen: torch.Generator) -> int:
    return int(torch.randint(n, (), generator=gen))


def draw_event(tissue: Data, ev: Recorded, gen: torch.Generator) -> Event | None:
    """The recorded event on cells drawn uniformly at random (None: nothing to draw from)."""
    reason = f"control replay of a {ev.rule or 'recorded'} {ev.kind} from step {ev.step}"
    hidden = (tissue.role == HIDDEN).nonzero().flatten()
    ids, src = tissue.cell_id, tissue.edge_index[0]
    rows: torch.Tensor | None = None
    if ev.kind in ("split", "remove"):
        rows = hidden
    elif ev.kind == "insert":
        rows = hidden[torch.isin(hidden, src)]
    if rows is not None:
        if not len(rows):
            return None
        cell = int(ids[rows[_pick(len(rows), gen)]])
        return Event(ev.kind, (cell,), 0.0, reason, ev.rule, options=ev.options)
    if ev.kind == "widen":
        return Event("widen", (), 0.0, reason, ev.rule, options=ev.options)
    if ev.kind == "disconnect":
        if not tissue.edge_index.shape[1]:
            return None
        edge = int(tissue.edge_id[_pick(tissue.edge_index.shape[1], gen)])
        return Event("disconnect", (), 0.0, reason, ev.rule, edge=edge, options=ev.options)
    return _draw_connect(tissue, ev, gen, reason)


def _draw_connect(tissue: Data, ev: Recorded, gen: torch.Generator, reason: str) -> Event | None:
    level, n = tissue.level, tissue.num_nodes
    legal = level[:, None] < level[None, :]  # (N, N) a on a lower level than b
    legal[tissue.edge_index[0], tissue.edge_index[1]] = False  # no edge a → b yet
    pairs = legal.nonzero()
    if not len(pairs) or n < 2:
        return None
    a, b = pairs[_pick(len(pairs), gen)].tolist()
    cells = (int(tissue.cell_id[a]), int(tissue.cell_id[b]))
    return Event("connect", cells, 0.0, reason, ev.rule, options=ev.options)
