"""Topology edits: pure descriptions of one change.

An :class:`Edit` carries a :class:`~morpho.surgery.RowMap` for every bank and the tissue
after the change. Builders (``split_edit``, ``unequal_split_edit``, ``insert_edit``,
``remove_edit``, ``connect_edit``, ``disconnect_edit``, ``identity_edit``, ``widen_edit``) only
read the network;
:func:`morpho.apply.apply_edit` applies one (parameters, optimizer state, tissue), and
:mod:`morpho.apply` has the one-call edits (``morpho.split(net, cell_id, optimizer=opt)``).

Edits never name a bank: each per-cell bank's row in a newborn cell follows its
declaration (:class:`~morpho.cells.Bank`: ``series`` for an insert, ``split`` for a split;
``net.bank_specs`` holds the cell type's and the network's readout), and a bank nobody
declared is refused with ``ValueError``.

Laws (tested, on every cell type under test): an identity edit changes nothing; a split
with ``noise=0``, an insert and a connect preserve the network function; no edit leaves
an edge at a dead cell, a duplicate id, or no path from an input cell to an output cell.

Width growth (:func:`widen_edit`, a :class:`WidenEdit`) changes no row: every cell's rows
grow along the axes its banks declare (:class:`~morpho.cells.ChannelAxis`), and the
network config changes with them (the cell type's :meth:`~morpho.cells.CellType.widened`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor
from torch_geometric.data import Data

from morpho.cells import CELL_TYPES, Bank
from morpho.network import EDGE_BANKS, READOUT, Network, NetworkConfig
from morpho.surgery import ChannelMap, RowMap
from morpho.tissue import HIDDEN, OUTPUT, io_connected

DAUGHTER_OFFSET = 0.15  # distance of each daughter from the mother's position


@dataclass(frozen=True)
class Edit:
    """One topology change: a row map per bank and the tissue after it.

    ``info`` names what changed, by stable id: ``cells`` (existing cells involved),
    ``new_cells``, ``dead_cells``, ``new_edges``, ``dead_edges``.
    """

    kind: str
    maps: dict[str, RowMap]
    tissue: Data
    info: dict[str, Any] = field(default_factory=dict)


def _take(x: Tensor, src: Tensor) -> Tensor:
    """Rows of a tissue field by a row map's ``src``; fresh rows (``-1``) are zero."""
    out = x.index_select(0, src.clamp(min=0))  # a copy
    fresh = src < 0
    if bool(fresh.any()):
        out[fresh] = 0
    return out


def _remap_tissue(t: Data, cell_src: Tensor, edge_src: Tensor, edge_index: Tensor) -> Data:
    """The tissue with every per-cell and per-edge tensor carried by the row maps.

    Fields added by other components (per-cell statistics, metaplasticity, …) travel too:
    any tensor whose leading size is N is a cell field; ``edge_*`` tensors are edge fields.
    """
    n = t.num_nodes
    new = Data()
    for key, value in t.items():
        if key == "edge_index":
            continue
        if not torch.is_tensor(value):
            new[key] = value
        elif key.startswith("edge_"):
            new[key] = _take(value, edge_src)
        elif value.dim() and value.shape[0] == n:
            new[key] = _take(value, cell_src)
        else:
            new[key] = value.clone()
    new.edge_index = edge_index
    new.num_nodes = int(cell_src.numel())
    return new


def _maps(
    net: Network,
    cell_map: RowMap,
    edge_map: RowMap,
    birth: str = "",
    **born: RowMap | Callable[[Bank], RowMap],
) -> dict[str, RowMap]:
    """A row map per bank: ``edge_map`` for the edge banks; for the per-cell banks, the map
    of the birth their declaration names (:class:`~morpho.cells.Bank`), ``cell_map`` for
    ``"copy"`` and where no cell is born.

    Args:
        birth: ``"series"`` or ``"split"``: the edit gives birth that way (else none).
        born: for each other way a bank may be born (``zero=…``, ``share=…``), its row map,
            or a function of the bank that builds one (``fresh=…``: the bank's own rows).

    Raises:
        ValueError: a bank that neither the cell type nor the network declares.
    """
    maps = {}
    for name in net.banks:
        if name in EDGE_BANKS:
            maps[name] = edge_map
            continue
        bank = net.bank_specs.get(name)
        if bank is None:
            raise ValueError(
                f"bank {name!r} is not declared by cell type {net.cfg.cell_type!r}; declared: "
                f"{', '.join(net.bank_specs)} (and the edge banks {', '.join(EDGE_BANKS)})"
            )
        rule = getattr(bank, birth) if birth else "copy"
        rmap = cell_map if rule == "copy" else born[rule]
        maps[name] = rmap if isinstance(rmap, RowMap) else rmap(bank)
    return maps


def identity_edit(net: Network) -> Edit:
    """The edit that changes nothing (tests hold that applying it is bit-invisible)."""
    t = net.tissue
    n, e = t.num_nodes, t.edge_index.shape[1]
    cell_map, edge_map = RowMap.identity(n), RowMap.identity(e)
    tissue = _remap_tissue(t, cell_map.src, edge_map.src, t.edge_index.clone())
    return Edit("identity", _maps(net, cell_map, edge_map), tissue)


def split_edit(
    net: Network,
    cell_id: int,
    noise: float = 0.0,
    task: int | None = None,
    generator: torch.Generator | None = None,
    antithetic: bool = False,
    offsets: Mapping[str, Tensor] | None = None,
) -> Edit:
    """Mitosis: the cell becomes two daughters (Net2Net-style widening).

    Both daughters copy the mother's incoming edges and the rows of every bank declared
    ``split="copy"``; every outgoing edge and the rows of banks declared ``split="share"``
    (outgoing weights: the network's readout) are halved on both, so the sum downstream —
    and the network function — is unchanged when ``noise == 0``. ``noise`` adds relative
    Gaussian noise to the daughters' copied rows to break their symmetry. Daughters get new
    ids and sit either side of the mother; daughter A keeps the mother's edge ids,
    daughter B's are new.

    ``offsets`` (bank → a row-shaped ``δ``, ``split="copy"`` banks only) give daughter A
    ``θ + δ`` and B ``θ − δ``: the two halves sum to ``½ f(θ+δ) + ½ f(θ−δ) = f(θ) + O(δ²)``,
    so the function is preserved to first order while the daughters differ by ``2δ`` (the
    split of Splitting Steepest Descent, Liu et al. 2019, along ``δ = ε·v``). ``antithetic``
    draws the noise that way: ``δ = noise · rms(row) · N(0, 1)`` per copied bank, ``±δ``
    on the two daughters, instead of independent draws.

    Raises:
        ValueError: an offset for a bank that is not copied by a split, or of the wrong shape.
    """
    t = net.tissue
    r = net.row_of(cell_id)
    n, e = t.num_nodes, t.edge_index.shape[1]
    cell_src = torch.cat([torch.arange(r + 1), torch.tensor([r]), torch.arange(r + 1, n)])
    shift = lambda rows: rows + (rows > r).long()  # old row -> new row  # noqa: E731
    src, dst = t.edge_index
    incident = ((src == r) | (dst == r)).nonzero().flatten()
    copies = t.edge_index[:, incident].clone()
    new_src, new_dst = shift(torch.cat([src, copies[0]])), shift(torch.cat([dst, copies[1]]))
    is_copy = torch.arange(e + incident.numel()) >= e
    new_src[is_copy & (new_src == r)] = r + 1
    new_dst[is_copy & (new_dst == r)] = r + 1
    edge_src = torch.cat([torch.arange(e), incident])
    outgoing = (new_src == r) | (new_src == r + 1)
    edge_map = RowMap.build(edge_src, scale=torch.where(outgoing, 0.5, 1.0))
    daughters = torch.zeros(n + 1, dtype=torch.bool)
    daughters[[r, r + 1]] = True
    cell_map = RowMap.build(cell_src, noise=daughters.float() * (0.0 if antithetic else noise))
    shared = RowMap.build(cell_src, scale=torch.where(daughters, 0.5, 1.0))
    if antithetic and noise > 0:
        offsets = antithetic_offsets(net, r, noise, generator)

    tissue = _remap_tissue(t, cell_src, edge_src, torch.stack([new_src, new_dst]))
    ids = [t.next_cell_id, t.next_cell_id + 1]
    tissue.cell_id[[r, r + 1]] = torch.tensor(ids)
    tissue.parent[[r, r + 1]] = cell_id
    tissue.birth[[r, r + 1]] = net.step
    if task is not None:
        tissue.task[[r, r + 1]] = task
    direction = torch.randn(3, generator=generator)
    direction = DAUGHTER_OFFSET * direction / direction.norm().clamp(min=1e-6)
    tissue.pos[r] = t.pos[r] - direction
    tissue.pos[r + 1] = t.pos[r] + direction
    new_edge_ids = torch.arange(t.next_edge_id, t.next_edge_id + incident.numel())
    tissue.edge_id[e:] = new_edge_ids
    tissue.edge_birth[e:] = net.step
    tissue.next_cell_id = t.next_cell_id + 2
    tissue.next_edge_id = t.next_edge_id + incident.numel()
    info = {
        "cells": [cell_id],
        "new_cells": ids,
        "dead_cells": [cell_id],
        "new_edges": new_edge_ids.tolist(),
        "dead_edges": [],
    }
    maps = _maps(net, cell_map, edge_map, "split", share=shared)
    return Edit("split", _shifted(net, maps, r, offsets or {}), tissue, info)


def antithetic_offsets(
    net: Network, row: int, noise: float, generator: torch.Generator | None = None
) -> dict[str, Tensor]:
    """Per ``split="copy"`` bank, ``δ = noise · rms(row) · N(0, 1)`` shaped like cell
    ``row``'s row (a scalar row: ``|row|``), for the ``±δ`` of an antithetic split."""
    out = {}
    for name, bank in net.banks.items():
        spec = net.bank_specs.get(name)
        if name in EDGE_BANKS or spec is None or spec.split != "copy":
            continue
        x = bank[row].detach().float().cpu()
        rms = x.pow(2).mean().sqrt() if x.dim() else x.abs()
        out[name] = noise * rms * torch.randn(x.shape, generator=generator)
    return out


def _shifted(
    net: Network, maps: dict[str, RowMap], row: int, offsets: Mapping[str, Tensor]
) -> dict[str, RowMap]:
    """``maps`` with daughter A (new ``row``) shifted by ``+δ`` and B (``row + 1``) by ``−δ``."""
    out = dict(maps)
    for name, delta in offsets.items():
        spec = net.bank_specs.get(name)
        if spec is None or spec.split != "copy":
            raise ValueError(f"offset for bank {name!r}, which a split does not copy")
        shape = tuple(net.banks[name].shape[1:])
        if tuple(delta.shape) != shape:
            raise ValueError(
                f"offset for bank {name!r} has shape {tuple(delta.shape)}; expected {shape}"
            )
        shift = torch.zeros(len(maps[name]), *shape)
        shift[row], shift[row + 1] = delta.float().cpu(), -delta.float().cpu()
        out[name] = replace(maps[name], shift=shift)
    return out


def unequal_split_edit(
    net: Network,
    cell_id: int,
    share: float = 1.0,
    noise: float = 0.0,
    task: int | None = None,
    fields: Mapping[str, float] | None = None,
    generator: torch.Generator | None = None,
) -> Edit:
    """Asymmetric mitosis: a :func:`split_edit` whose daughters inherit unequal shares.

    Daughter A takes ``share`` of every outgoing strength and of the rows of the banks
    declared ``split="share"`` (the readout), daughter B the rest, ``1 - share``; the sum
    downstream is the mother's, so with ``noise == 0`` the function is preserved for any
    share. The optimizer state follows the row map's scale like any edit's (first moments
    by ``share``, second by ``share ** 2``): with ``share=1``, B's outgoing rows start at
    zero with zero moments, like fresh rows, and A continues the mother's exactly.
    ``fields`` set per-cell tissue fields of daughter B (a stem cell's fresh plasticity:
    ``{"viscosity": 0.0}``), carried by the edit like every other field.

    Raises:
        ValueError: ``share`` outside [0, 1], or a field the tissue has no per-cell entry for.
    """
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must be in [0, 1]; got {share}")
    edit = split_edit(net, cell_id, noise=noise, task=task, generator=generator)
    a = net.row_of(cell_id)  # daughter A's row; B's is the next
    t = edit.tissue
    n = t.num_nodes
    cells = [k for k, v in t.items() if torch.is_tensor(v) and v.dim() and v.shape[0] == n]
    for key, value in (fields or {}).items():
        if key not in cells or key.startswith("edge_"):
            raise ValueError(f"unknown cell field {key!r}; expected one of: {', '.join(cells)}")
        t[key][a + 1] = value
    shares = lambda rows: torch.where(  # noqa: E731
        rows == a, share, torch.where(rows == a + 1, 1.0 - share, 1.0)
    )
    out_share, cell_share = shares(t.edge_index[0]), shares(torch.arange(n))
    maps = {}
    for name, rmap in edit.maps.items():
        if name in EDGE_BANKS:
            maps[name] = replace(rmap, scale=out_share)
        elif net.bank_specs[name].split == "share":
            maps[name] = replace(rmap, scale=cell_share)
        else:
            maps[name] = rmap
    return Edit("split", maps, t, {**edit.info, "share": share})


def insert_edit(
    net: Network,
    cell_id: int,
    task: int | None = None,
    generator: torch.Generator | None = None,
) -> Edit:
    """Mitosis in series: a new cell ``c`` takes over the cell's outputs (``a → c → …``).

    ``c`` sits on a new level just above the cell's (every higher level moves up by one),
    receives one edge ``a → c`` at strength 1 and inherits every outgoing edge of ``a``
    (same ids, strengths and optimizer state). It copies ``a``'s rows of the banks declared
    ``series="copy"``; those declared ``series="zero"`` (the cell type's output projections,
    the readout) start at zero with zero moments, those declared ``series="fresh"`` get a
    new row from the bank's ``init`` (drawn from ``generator``, default: the global one) and
    a fresh optimizer state; ``c`` carries its raw input on the residual — so at birth
    ``y_c = x_c = y_a``: the network function is unchanged (to float summation order).
    Its clock is ``a``'s times ``clock_ratio`` (capped at ``clock_max``): levels grown in
    series run slower. The demand ``a`` sees (the gate EMA of the cells it feeds) is kept
    by giving ``c`` the gate EMA equal to ``a``'s former demand ratio.

    Raises:
        ValueError: the cell is an output cell or feeds no cell.
    """
    t = net.tissue
    r = net.row_of(cell_id)
    if int(t.role[r]) == OUTPUT:
        raise ValueError(
            f"cell {cell_id} is an output cell; only input and hidden cells can divide in series"
        )
    src, dst = t.edge_index
    out = src == r
    if not bool(out.any()):
        raise ValueError(f"cell {cell_id} feeds no cell; nothing to insert a cell in front of")
    n, e = t.num_nodes, t.edge_index.shape[1]
    lvl = int(t.level[r])
    c = int((t.level <= lvl).sum())  # the new row: right after the cell's level
    cell_src = torch.cat([torch.arange(c), torch.tensor([r]), torch.arange(c, n)])
    shift = lambda rows: rows + (rows >= c).long()  # old row -> new row  # noqa: E731
    new_src = torch.where(out, torch.tensor(c), shift(src))
    new_dst = shift(dst)
    edge_index = torch.cat([torch.stack([new_src, new_dst]), torch.tensor([[r], [c]])], dim=1)
    edge_src = torch.cat([torch.arange(e), torch.tensor([-1])])
    edge_map = RowMap.build(edge_src, fill=torch.cat([torch.zeros(e), torch.ones(1)]))
    newborn = torch.zeros(n + 1, dtype=torch.bool)
    newborn[c] = True
    zeroed = RowMap.build(cell_src, scale=torch.where(newborn, 0.0, 1.0))

    # the demand ratio a saw before: max_e(|s| g_b) / max_e |s| over its outgoing edges
    s = net.banks["strength"].detach().cpu().abs()[out]
    g = t.gate_ema[dst[out]].float()
    demand = float((s * g).max() / s.max().clamp(min=1e-12))

    tissue = _remap_tissue(t, cell_src, edge_src, edge_index)
    tissue.level = torch.where(torch.arange(n + 1) > c, tissue.level + 1, tissue.level)
    tissue.level[c] = lvl + 1
    tissue.cell_id[c] = t.next_cell_id
    tissue.parent[c] = cell_id
    tissue.birth[c] = net.step
    tissue.role[c] = HIDDEN
    tissue.raw_skip[c] = 1
    tissue.gate_ema[c] = demand
    ratio, cap = net.cfg.clock_ratio, net.cfg.clock_max
    tissue.clock[c] = min(cap, int(t.clock[r]) * ratio) if ratio > 1 else int(t.clock[r])
    if task is not None:
        tissue.task[c] = task
    targets = t.pos[dst[out]].mean(0)
    tissue.pos[c] = t.pos[r] + 0.5 * (targets - t.pos[r])
    tissue.edge_id[-1] = t.next_edge_id
    tissue.edge_birth[-1] = net.step
    tissue.next_cell_id = t.next_cell_id + 1
    tissue.next_edge_id = t.next_edge_id + 1
    info = {
        "cells": [cell_id],
        "new_cells": [t.next_cell_id],
        "dead_cells": [],
        "new_edges": [t.next_edge_id],
        "dead_edges": [],
    }

    def fresh(bank: Bank) -> RowMap:  # a new row for c, drawn from the bank's init
        rows = torch.zeros(n + 1, *bank.shape)
        rows[c] = bank.init(1, generator or torch.default_generator)[0]
        return RowMap.build(torch.where(newborn, -1, cell_src), fill=rows)

    maps = _maps(net, RowMap.build(cell_src), edge_map, "series", zero=zeroed, fresh=fresh)
    return Edit("insert", maps, tissue, info)


def remove_edit(net: Network, cell_id: int, bridge: bool = False) -> Edit:
    """Apoptosis: the cell and its edges go; its rows are recycled (banks are compacted).

    With ``bridge``, each path ``a → cell → b`` becomes an edge ``a → b`` of strength
    ``s(a, cell) · s(cell, b)`` (a linearisation of the dead cell) unless ``a → b`` exists.

    Raises:
        ValueError: removing the cell would leave no path from an input to an output cell.
    """
    t = net.tissue
    r = net.row_of(cell_id)
    if not io_connected(t, dead_cells=[r]):
        raise ValueError(f"removing cell {cell_id} would disconnect every input from every output")
    n = t.num_nodes
    src, dst = t.edge_index
    keep = (src != r) & (dst != r)
    edge_src = keep.nonzero().flatten()
    fill = torch.zeros(edge_src.numel())
    new_pairs = torch.zeros(2, 0, dtype=torch.long)
    if bridge:
        new_pairs, bridge_fill = _bridges(net, r)
        edge_src = torch.cat([edge_src, torch.full((new_pairs.shape[1],), -1)])
        fill = torch.cat([fill, bridge_fill])
    cell_src = torch.cat([torch.arange(r), torch.arange(r + 1, n)])
    old_ei = torch.cat([t.edge_index[:, keep], new_pairs], dim=1)
    edge_index = old_ei - (old_ei > r).long()
    tissue = _remap_tissue(t, cell_src, edge_src, edge_index)
    n_new = new_pairs.shape[1]
    new_ids = torch.arange(t.next_edge_id, t.next_edge_id + n_new)
    if n_new:
        tissue.edge_id[-n_new:] = new_ids
        tissue.edge_birth[-n_new:] = net.step
    tissue.next_edge_id = t.next_edge_id + n_new
    info = {
        "cells": [cell_id],
        "new_cells": [],
        "dead_cells": [cell_id],
        "new_edges": new_ids.tolist(),
        "dead_edges": t.edge_id[~keep].tolist(),
    }
    maps = _maps(net, RowMap.build(cell_src), RowMap.build(edge_src, fill=fill))
    return Edit("remove", maps, tissue, info)


def _bridges(net: Network, r: int) -> tuple[Tensor, Tensor]:
    """Edges ``a → b`` (old rows) replacing paths through row ``r``, and their strengths."""
    t = net.tissue
    src, dst = t.edge_index
    s = net.banks["strength"].detach().cpu()
    ins, outs = (dst == r).nonzero().flatten(), (src == r).nonzero().flatten()
    a = src[ins].repeat_interleave(outs.numel())
    b = dst[outs].repeat(ins.numel())
    strength = s[ins].repeat_interleave(outs.numel()) * s[outs].repeat(ins.numel())
    new = ~torch.isin(a * t.num_nodes + b, src * t.num_nodes + dst)  # skip existing a -> b
    return torch.stack([a[new], b[new]]), strength[new]


def connect_edit(net: Network, src_id: int, dst_id: int) -> Edit:
    """Dendritic growth: a new edge ``src → dst`` at strength 0 (function-preserving).

    Raises:
        ValueError: the edge exists already, or ``src`` is not on a lower level than ``dst``.
    """
    t = net.tissue
    a, b = net.row_of(src_id), net.row_of(dst_id)
    if int(t.level[a]) >= int(t.level[b]):
        raise ValueError(
            f"an edge must go up a level; cell {src_id} is on level {int(t.level[a])}, "
            f"cell {dst_id} on level {int(t.level[b])}"
        )
    src, dst = t.edge_index
    if bool(((src == a) & (dst == b)).any()):
        raise ValueError(f"cells {src_id} -> {dst_id} are already connected")
    e = t.edge_index.shape[1]
    edge_src = torch.cat([torch.arange(e), torch.tensor([-1])])
    edge_index = torch.cat([t.edge_index, torch.tensor([[a], [b]])], dim=1)
    tissue = _remap_tissue(t, torch.arange(t.num_nodes), edge_src, edge_index)
    tissue.edge_id[-1] = t.next_edge_id
    tissue.edge_birth[-1] = net.step
    tissue.next_edge_id = t.next_edge_id + 1
    info = {
        "cells": [src_id, dst_id],
        "new_cells": [],
        "dead_cells": [],
        "new_edges": [t.next_edge_id],
        "dead_edges": [],
    }
    maps = _maps(net, RowMap.identity(t.num_nodes), RowMap.build(edge_src))
    return Edit("connect", maps, tissue, info)


def disconnect_edit(net: Network, edge_id: int) -> Edit:
    """Pruning: drop one edge.

    Raises:
        ValueError: dropping it would leave no path from an input to an output cell.
    """
    t = net.tissue
    j = net.edge_row_of(edge_id)
    if not io_connected(t, dead_edges=[j]):
        raise ValueError(f"removing edge {edge_id} would disconnect every input from every output")
    e = t.edge_index.shape[1]
    edge_src = torch.cat([torch.arange(j), torch.arange(j + 1, e)])
    a, b = t.edge_index[:, j].tolist()
    tissue = _remap_tissue(t, torch.arange(t.num_nodes), edge_src, t.edge_index[:, edge_src])
    info = {
        "cells": [int(t.cell_id[a]), int(t.cell_id[b])],
        "new_cells": [],
        "dead_cells": [],
        "new_edges": [],
        "dead_edges": [edge_id],
    }
    maps = _maps(net, RowMap.identity(t.num_nodes), RowMap.build(edge_src))
    return Edit("disconnect", maps, tissue, info)


@dataclass(frozen=True)
class WidenEdit(Edit):
    """Width growth: no row moves (``maps`` are identities); the banks in ``channels`` grow.

    ``network``: the config after the edit; ``n_params``: the parameter count after it.
    """

    network: NetworkConfig | None = None
    channels: dict[str, ChannelMap] = field(default_factory=dict)
    n_params: int = 0


def widen_edit(
    net: Network,
    d_cell: int,
    generator: torch.Generator | None = None,
    fanout: Tensor | None = None,
) -> WidenEdit:
    """Width growth: every cell gets ``d_cell − d`` new channels, function-preserving.

    Old entries keep their place in each block of a declared channel axis
    (:class:`~morpho.cells.ChannelAxis`); new entries come from the bank's ``init`` at the
    new width (drawn from ``generator``, default: the global one), or are zero where the
    axis says ``"zero"``: the cell type declares its zeros so that the new channels
    contribute nothing at birth (``morpho.cells_wide``: the network function, and the
    gradient of every old entry, are unchanged). Applying it carries the optimizer state:
    old entries keep theirs, new entries start at zero. A bank declared with a
    ``widen_power`` ``p`` has its old entries scaled by ``(d_cell/d) ** p``, their moments
    like its gradient (:func:`~morpho.surgery.widen_optimizer_state`).

    ``fanout`` (N, d_cell − d, D): GradMax's write rows of the new channels (the wide cell's
    ``w_write``; :mod:`morpho.growth.gradmax`) instead of zero; the new channels' columns of
    the MLP's second layer (``w_mlp2``) are then zero, so that the new channels — their
    reads zero — stay zero and the function is still unchanged at birth.

    Raises:
        ValueError: a ``fanout`` for a cell type without ``w_write`` or of the wrong shape;
            ``d_cell`` is not above the current width; the cell type cannot widen
            (to ``d_cell``); a bank is not declared, or changes shape on an axis it does not
            declare as a channel axis.
    """
    d = net.cfg.d_cell
    if d_cell <= d:
        raise ValueError(f"widen needs d_cell above the current {d}; got {d_cell}")
    cfg = net.cell.widened(net.cfg, d_cell)
    specs = {**CELL_TYPES.get(cfg.cell_type).from_network(cfg).banks(d_cell), "readout": READOUT}
    gen = generator or torch.default_generator
    channels = {}
    for name, bank in net.banks.items():
        if name in EDGE_BANKS:
            continue
        if name not in net.bank_specs or name not in specs:
            raise ValueError(
                f"bank {name!r} is not declared by cell type {net.cfg.cell_type!r}; declared: "
                f"{', '.join(net.bank_specs)} (and the edge banks {', '.join(EDGE_BANKS)})"
            )
        cmap = _channel_map(name, tuple(bank.shape[1:]), specs[name], bank.shape[0], gen)
        if cmap is not None:
            scale = (d_cell / d) ** specs[name].widen_power
            channels[name] = dataclasses.replace(cmap, scale=scale)
    if fanout is not None:
        channels = _with_fanout(channels, fanout)
    t = net.tissue
    n, e = t.num_nodes, t.edge_index.shape[1]
    tissue = _remap_tissue(t, torch.arange(n), torch.arange(e), t.edge_index.clone())
    grown = sum(c.fill.numel() - net.banks[k].numel() for k, c in channels.items())
    info: dict[str, Any] = {"cells": [], "new_cells": [], "dead_cells": [], "new_edges": []}
    info.update(dead_edges=[], old_width=d, new_width=d_cell)
    maps = _maps(net, RowMap.identity(n), RowMap.identity(e))
    return WidenEdit("widen", maps, tissue, info, cfg, channels, net.n_params() + grown)


def _new_positions(cmap: ChannelMap, axis: int) -> Tensor:
    """Positions on row ``axis`` of a widened bank that hold new channels."""
    is_new = torch.ones(cmap.shape[axis], dtype=torch.bool)
    is_new[cmap.index[axis]] = False
    return is_new.nonzero().flatten()


def _with_fanout(channels: dict[str, ChannelMap], fanout: Tensor) -> dict[str, ChannelMap]:
    """GradMax: the new write rows from ``fanout``; the MLP writes nothing to new channels."""
    if "w_write" not in channels:
        raise ValueError("a GradMax fanout needs a cell type with a widened 'w_write' bank")
    cmap = channels["w_write"]
    rows = _new_positions(cmap, 0)
    want = (cmap.fill.shape[0], rows.numel(), cmap.shape[1])
    if tuple(fanout.shape) != want:
        raise ValueError(f"fanout has shape {tuple(fanout.shape)}; expected {want}")
    fill = cmap.fill.clone()
    fill[:, rows] = fanout.to(fill)
    out = {**channels, "w_write": dataclasses.replace(cmap, fill=fill)}
    if "w_mlp2" in channels:
        mlp = channels["w_mlp2"]
        fill = mlp.fill.index_fill(2, _new_positions(mlp, 1), 0.0)
        out["w_mlp2"] = dataclasses.replace(mlp, fill=fill)
    return out


def _channel_map(
    name: str, old: tuple[int, ...], bank: Bank, n: int, gen: torch.Generator
) -> ChannelMap | None:
    """How bank ``name`` (rows ``old``) grows to its declaration ``bank`` at the new width;
    None if it does not change."""
    axes = {c.axis: c for c in bank.channels}
    if old == bank.shape:
        return None
    declared = ", ".join(str(a) for a in sorted(axes)) or "none"
    if len(old) != len(bank.shape) or any(a >= len(old) for a in axes):
        raise ValueError(
            f"bank {name!r} changes its row shape {old} -> {bank.shape} on undeclared axes "
            f"(declared channel axes: {declared})"
        )
    index = []
    for a, (before, after) in enumerate(zip(old, bank.shape, strict=True)):
        c = axes.get(a)
        if c is None and before != after:
            raise ValueError(
                f"bank {name!r} changes axis {a} from {before} to {after}, which it does not "
                f"declare as a channel axis (declared: {declared})"
            )
        blocks = 1 if c is None else c.blocks
        if before % blocks or after % blocks:
            raise ValueError(f"bank {name!r} axis {a}: {before} -> {after} is not {blocks} blocks")
        per_old, per_new = before // blocks, after // blocks
        index.append((torch.arange(blocks)[:, None] * per_new + torch.arange(per_old)).flatten())
    fill = bank.init(n, gen)
    if tuple(fill.shape) != (n, *bank.shape):
        raise ValueError(f"bank {name!r} initialises rows of shape {tuple(fill.shape)}")
    for a, c in axes.items():
        if c.new == "zero":
            is_new = torch.ones(bank.shape[a], dtype=torch.bool)
            is_new[index[a]] = False
            fill.index_fill_(a + 1, is_new.nonzero().flatten(), 0.0)
    return ChannelMap(tuple(index), fill)
