"""Event → edit: the one place a growth event becomes a ``morpho.edits`` edit.

edit = edit_for(net, event, generator)     # ValueError if the engine refuses it
params_after(net, edit)                    # its parameter count, before applying it
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import torch

from morpho.edits import (
    Edit,
    WidenEdit,
    connect_edit,
    disconnect_edit,
    insert_edit,
    remove_edit,
    split_edit,
    unequal_split_edit,
    widen_edit,
)
from morpho.growth.resolve import Budget
from morpho.growth.rule import Event
from morpho.growth.stats import CELL_STATS
from morpho.network import Network

EDIT_BUILDERS: dict[str, Callable[..., Edit]] = {
    # a ``share`` option asks for an asymmetric split (daughters with unequal shares)
    "split": lambda net, ev, gen: (unequal_split_edit if "share" in ev.options else split_edit)(
        net, ev.cells[0], generator=gen, **ev.options
    ),
    "insert": lambda net, ev, gen: insert_edit(net, ev.cells[0], **ev.options),
    "remove": lambda net, ev, gen: remove_edit(net, ev.cells[0], **ev.options),
    "connect": lambda net, ev, gen: connect_edit(net, ev.cells[0], ev.cells[1]),
    "disconnect": lambda net, ev, gen: disconnect_edit(net, ev.edge),
    "widen": lambda net, ev, gen: widen_edit(net, generator=gen, **ev.options),
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
    if isinstance(edit, WidenEdit):
        return edit.n_params
    banks = sum(len(edit.maps[k]) * v[0].numel() for k, v in net.banks.items() if len(v))
    return net.n_params() - sum(v.numel() for v in net.banks.values()) + banks


def edit_within(budget: Budget, net: Network, edit: Edit) -> bool:
    """Does applying ``edit`` to ``net`` stay within ``budget``?"""
    params = (net.n_params(), params_after(net, edit)) if budget.max_params else (0, 0)
    n = net.tissue.num_nodes, edit.tissue.num_nodes
    return budget.allows(*n, edit.tissue.level, params)


def cell_stats(net: Network, cell_id: int) -> dict[str, float]:
    """The statistics and level of a live cell, as an event records them."""
    r = net.row_of(cell_id)
    out = {k: float(net.tissue[k][r]) for k in CELL_STATS}
    out["level"] = int(net.tissue.level[r])
    return out


def replay_options(event: Event) -> dict[str, Any]:
    """The JSON-able edit options of ``event`` that a blind control replays
    (``event.replay``, else ``event.options``).

    Raises:
        TypeError: they are not JSON values (a rule put tensors in ``options`` and gave no
            ``replay``).
    """
    out = dict(event.options if event.replay is None else event.replay)
    try:
        json.dumps(out)
    except (TypeError, ValueError):
        raise TypeError(
            f"rule {event.rule or '?'}: a {event.kind} event's options are not JSON values "
            "and it gives no replay; expected Event.replay with the blind edit's options"
        ) from None
    return out


def event_record(
    net: Network,
    event: Event,
    edit: Edit,
    step: int,
    before: dict[str, dict[str, float]],
    extra: dict[str, float],
    optimizer_state: str = "exact",
) -> dict[str, Any]:
    """The ``events.jsonl`` line of an applied event (``before``: its cells' statistics;
    ``optimizer_state``: the policy its edit was applied with, :mod:`morpho.optstate`)."""
    return {
        "step": step,
        "kind": edit.kind,
        "rule": event.rule,
        **edit.info,
        "reason": event.reason,
        "score": event.score,
        "options": replay_options(event),  # what a control replays (morpho.growth.control)
        "stats": {**event.stats, **extra},
        "cell_stats": before,
        "free_energy": [s["fe_ema"] for s in before.values()],
        "n_cells": net.tissue.num_nodes,
        "n_edges": int(net.tissue.edge_index.shape[1]),
        "n_params": net.n_params(),
        "optimizer_state": optimizer_state,
    }
