"""Apply an edit: the one place a network's banks, their gradients and the optimizer state
change with the topology, and the one-call edits built on it.

:func:`apply_edit` remaps the parameters *and* every optimizer state tensor shaped like
them in place (the optimizer is never rebuilt), swaps in the new tissue and rebuilds the
level plan. The public one-liners build an edit (:mod:`morpho.edits`), apply it and return
it:

    edit = morpho.split(net, cell_id, optimizer=opt, noise=0.0)   # function-preserving
    morpho.split_unequal(net, cell_id, optimizer=opt, share=1.0,  # A keeps all outputs,
                         fields={"viscosity": 0.0})               # B starts fluid
    morpho.insert(net, cell_id, optimizer=opt)                    # in series, identity
    morpho.remove(net, cell_id, optimizer=opt, bridge=False)
    morpho.connect(net, src_id, dst_id, optimizer=opt)            # new edge at strength 0
    morpho.disconnect(net, edge_id, optimizer=opt)
    morpho.widen(net, d_cell=64, optimizer=opt)                   # more channels, zero-output

Every one-call edit takes ``optimizer_state`` (``"exact"``, the default; ``"asymmetric"``
with ``rewarm_steps``; ``"reset"``: :mod:`morpho.optstate`) and ``apply_edit`` a
:class:`~morpho.optstate.StatePolicy`.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from morpho.cells import CELL_TYPES
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
from morpho.network import READOUT, Network
from morpho.optstate import DEFAULT_REWARM, StatePolicy, new_entries, reset_state, restart_entries
from morpho.surgery import (
    migrate_optimizer_state,
    remap_parameter,
    remap_rows,
    widen_optimizer_state,
    widen_rows,
)


def apply_edit(
    net: Network,
    edit: Edit,
    optimizer: torch.optim.Optimizer | None = None,
    generator: torch.Generator | None = None,
    policy: StatePolicy | None = None,
) -> Edit:
    """Apply ``edit`` to the network's banks, their gradients and ``optimizer``'s state.

    Each bank whose row map is not the identity becomes a new ``nn.Parameter`` that replaces
    the old one in the module and in ``optimizer``'s param group (same place, same
    hyperparameters); banks with an identity map are left as they are. The optimizer object
    is kept. Another optimizer holding the banks would keep stale tensors: pass the one in use.
    ``policy`` (default ``exact``) says what the state of the touched entries holds after
    the carry (:mod:`morpho.optstate`).
    """
    policy = policy or StatePolicy()
    if isinstance(edit, WidenEdit):
        _apply_widen(net, edit, optimizer, policy)
    else:
        _apply_rows(net, edit, optimizer, generator, policy)
    if optimizer is not None and policy.name == "reset":
        reset_state(optimizer)
    return edit


def _apply_rows(
    net: Network,
    edit: Edit,
    optimizer: torch.optim.Optimizer | None,
    generator: torch.Generator | None,
    policy: StatePolicy,
) -> None:
    """Remap every bank by its row map (and its gradient and optimizer state)."""
    missing = set(net.banks) - set(edit.maps)
    if missing:
        raise ValueError(f"edit has no row map for banks: {sorted(missing)}")
    for name, old in list(net.banks.items()):
        rmap = edit.maps[name]
        if rmap.is_identity(old.shape[0]):
            continue  # e.g. the cell banks in a connect: parameter, gradient and state stay
        if len(rmap) and int(rmap.src.max()) >= old.shape[0]:
            raise ValueError(
                f"row map of bank {name!r} reads row {int(rmap.src.max())} of {old.shape[0]}"
            )
        new = nn.Parameter(remap_parameter(old.detach(), rmap, generator), old.requires_grad)
        if old.grad is not None:
            new.grad = remap_rows(old.grad, rmap)
        if optimizer is not None:
            migrate_optimizer_state(optimizer, old, new, rmap)
            if policy.name == "asymmetric":
                restart_entries(optimizer, new, new_entries(new, rmap), policy.rewarm_steps)
        net.banks[name] = new
    net.tissue = edit.tissue
    net.rebuild()


def _apply_widen(
    net: Network, edit: WidenEdit, optimizer: torch.optim.Optimizer | None, policy: StatePolicy
) -> None:
    """Grow the banks ``edit.channels`` names (gradients: new entries 0; optimizer state:
    :func:`~morpho.surgery.widen_optimizer_state`) and switch to the widened config."""
    assert edit.network is not None  # set by widen_edit
    for name, cmap in edit.channels.items():
        old = net.banks[name]
        value = widen_rows(old.detach(), cmap, cmap.fill.to(old), power=1)
        new = nn.Parameter(value, old.requires_grad)
        if old.grad is not None:
            new.grad = widen_rows(old.grad, cmap, power=-1)
        if optimizer is not None:
            widen_optimizer_state(optimizer, old, new, cmap)
            if policy.name == "asymmetric":
                restart_entries(optimizer, new, new_entries(new, cmap), policy.rewarm_steps)
        net.banks[name] = new
    net.cfg = edit.network
    net.cell = CELL_TYPES.get(net.cfg.cell_type).from_network(net.cfg)
    net.bank_specs = {**net.cell.banks(net.cfg.d_cell), "readout": READOUT}
    net.tissue = edit.tissue
    net.rebuild()


def split(
    net: Network,
    cell_id: int,
    optimizer: torch.optim.Optimizer | None = None,
    noise: float = 0.0,
    task: int | None = None,
    optimizer_state: str = "exact",
    rewarm_steps: int = DEFAULT_REWARM,
    antithetic: bool = False,
    generator: torch.Generator | None = None,
) -> Edit:
    """Split a cell into two daughters (see :func:`split_edit`) and apply it."""
    edit = split_edit(
        net, cell_id, noise=noise, task=task, antithetic=antithetic, generator=generator
    )
    return apply_edit(net, edit, optimizer, policy=StatePolicy(optimizer_state, rewarm_steps))


def split_unequal(
    net: Network,
    cell_id: int,
    optimizer: torch.optim.Optimizer | None = None,
    share: float = 1.0,
    task: int | None = None,
    fields: Mapping[str, float] | None = None,
    optimizer_state: str = "exact",
    rewarm_steps: int = DEFAULT_REWARM,
) -> Edit:
    """Split a cell into daughters with unequal shares (see :func:`unequal_split_edit`)."""
    edit = unequal_split_edit(net, cell_id, share=share, task=task, fields=fields)
    return apply_edit(net, edit, optimizer, policy=StatePolicy(optimizer_state, rewarm_steps))


def insert(
    net: Network,
    cell_id: int,
    optimizer: torch.optim.Optimizer | None = None,
    task: int | None = None,
    optimizer_state: str = "exact",
    rewarm_steps: int = DEFAULT_REWARM,
) -> Edit:
    """Insert a cell in series after ``cell_id`` (see :func:`insert_edit`) and apply it."""
    policy = StatePolicy(optimizer_state, rewarm_steps)
    return apply_edit(net, insert_edit(net, cell_id, task=task), optimizer, policy=policy)


def remove(
    net: Network, cell_id: int, optimizer: torch.optim.Optimizer | None = None, bridge: bool = False
) -> Edit:
    """Remove a cell (see :func:`remove_edit`) and apply it."""
    return apply_edit(net, remove_edit(net, cell_id, bridge=bridge), optimizer)


def connect(
    net: Network, src_id: int, dst_id: int, optimizer: torch.optim.Optimizer | None = None
) -> Edit:
    """Grow an edge at strength 0 (see :func:`connect_edit`) and apply it."""
    return apply_edit(net, connect_edit(net, src_id, dst_id), optimizer)


def disconnect(net: Network, edge_id: int, optimizer: torch.optim.Optimizer | None = None) -> Edit:
    """Drop an edge (see :func:`disconnect_edit`) and apply it."""
    return apply_edit(net, disconnect_edit(net, edge_id), optimizer)


def widen(
    net: Network,
    d_cell: int,
    optimizer: torch.optim.Optimizer | None = None,
    generator: torch.Generator | None = None,
    optimizer_state: str = "exact",
    rewarm_steps: int = DEFAULT_REWARM,
) -> Edit:
    """Give every cell ``d_cell`` channels (see :func:`widen_edit`) and apply it."""
    edit = widen_edit(net, d_cell, generator=generator)
    return apply_edit(net, edit, optimizer, policy=StatePolicy(optimizer_state, rewarm_steps))
