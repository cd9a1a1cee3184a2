"""Event → edit: the one place a growth event becomes a ``morpho.edits`` edit.

edit = edit_for(net, event, generator)     # ValueError if the engine refuses it
params_after(net, edit)                    # its parameter count, before applying it
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from morpho.edits import Edit, connect_edit, disconnect_edit, insert_edit, remove_edit, split_edit
from morpho.growth.rule import Event
from morpho.network import Network

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
