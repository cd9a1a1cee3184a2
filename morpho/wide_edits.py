"""Function-preserving growth edits of a :class:`morpho.wide.WideNetwork`.

Each edit rewrites the network in place (new ``nn.Parameter`` tensors, the tissue, the
level slices) and keeps the network function, before any symmetry-breaking noise:

    split_cell(net, row)          mitosis: a copy next to the mother; outgoing strengths and
                                  readout weights of both halved
    insert_series(net, row)       deepen: a fresh cell on a new level right after ``row``,
                                  write projection zero (``o = x``), taking over its targets
    add_edge(net, src, dst)       dendrite: an edge of strength zero
    widen_stream(net, k)          D → D + k stream channels: zero embedding and write columns,
                                  random read and head rows, norm scales × sqrt(D / (D + k))

The prototype replaces parameters without carrying optimizer state (build the optimizer
after the edit); porting these row maps onto :mod:`morpho.edits` carries it exactly.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch
from torch import Tensor, nn

from morpho.tissue import CELL_FIELDS, HIDDEN, check_tissue
from morpho.wide import WideNetwork, init_rows

STREAM_NORMS = ("norm",)  # cell banks that are RMS-norm scales over the stream


def _set_banks(net: WideNetwork, banks: dict[str, Tensor]) -> None:
    net.banks = nn.ParameterDict({k: nn.Parameter(v.detach().clone()) for k, v in banks.items()})


def _cell_order(net: WideNetwork, order: Tensor, new_id_at: int | None = None) -> None:
    """Reorder (and duplicate) the tissue's cells by ``order``; fresh id at ``new_id_at``."""
    t = net.tissue
    for name in CELL_FIELDS:
        t[name] = t[name][order]
    t.num_nodes = len(order)
    if new_id_at is not None:
        t.cell_id[new_id_at] = t.next_cell_id
        t.next_cell_id += 1


def _append_edges(net: WideNetwork, edges: Tensor, strength: Tensor) -> None:
    t = net.tissue
    k = edges.shape[1]
    t.edge_index = torch.cat([t.edge_index, edges], dim=1)
    t.edge_id = torch.cat([t.edge_id, torch.arange(t.next_edge_id, t.next_edge_id + k)])
    t.edge_birth = torch.cat([t.edge_birth, torch.full((k,), net.step)])
    t.next_edge_id += k
    banks = dict(net.banks)
    banks["strength"] = torch.cat([banks["strength"].detach(), strength])
    _set_banks(net, banks)


def split_cell(net: WideNetwork, row: int, noise: float = 0.0, seed: int = 0) -> int:
    """Mitosis of cell ``row``: returns the daughter's row (``row + 1``).

    Both daughters carry every bank row of the mother (the daughter plus ``noise`` · N(0, 1)
    on its matrices); incoming edges are copied, outgoing strengths and readout weights of
    both are halved, so every target sees ``s/2 · o + s/2 · o = s · o``.
    """
    n = net.tissue.num_nodes
    order = torch.cat([torch.arange(row + 1), torch.tensor([row]), torch.arange(row + 1, n)])
    old_to_new = torch.where(torch.arange(n) > row, torch.arange(n) + 1, torch.arange(n))
    gen = torch.Generator().manual_seed(seed)
    banks = {}
    for k, v in net.banks.items():
        if k == "strength":
            continue
        w = v.detach()[order].clone()
        if k == "readout":
            w[row] = w[row + 1] = w[row] / 2
        elif noise and w.dim() >= 3:
            w[row + 1] += noise * torch.randn(w[row + 1].shape, generator=gen)
        banks[k] = w
    t = net.tissue
    src, dst = old_to_new[t.edge_index[0]], old_to_new[t.edge_index[1]]
    s = net.banks["strength"].detach().clone()
    out = src == row
    s[out] = s[out] / 2
    banks["strength"] = s
    t.edge_index = torch.stack([src, dst])
    _cell_order(net, order, new_id_at=row + 1)
    t.parent[row + 1] = t.cell_id[row]
    _set_banks(net, banks)
    inc, outg = (dst == row), out
    copies = torch.cat(
        [
            torch.stack([src[inc], torch.full_like(src[inc], row + 1)]),
            torch.stack([torch.full_like(dst[outg], row + 1), dst[outg]]),
        ],
        dim=1,
    )
    _append_edges(net, copies, torch.cat([s[inc], s[outg]]))
    _finish(net)
    return row + 1


def insert_series(net: WideNetwork, row: int, seed: int = 0) -> int:
    """Deepen after cell ``row``: a fresh cell on a new level takes over ``row``'s outgoing
    edges (same strengths) and is fed by ``row`` at strength 1. Its write projection is
    zero, so its output is its input ``o_a`` and every former target sees the same sum.
    Returns the new cell's row."""
    t = net.tissue
    n, lv = t.num_nodes, int(t.level[row])
    at = int((t.level <= lv).sum())  # the new level's row: after every cell of level lv
    order = torch.cat([torch.arange(at), torch.tensor([row]), torch.arange(at, n)])
    old_to_new = torch.where(torch.arange(n) >= at, torch.arange(n) + 1, torch.arange(n))
    fresh = init_rows(net.cfg, 1, torch.Generator().manual_seed(seed))
    fresh["w_write"].zero_()
    banks = {}
    for k, v in net.banks.items():
        if k == "strength":
            continue
        w = v.detach()[order].clone()
        w[at] = fresh[k][0] if k != "readout" else 0.0
        banks[k] = w
    src, dst = old_to_new[t.edge_index[0]], old_to_new[t.edge_index[1]]
    mother = int(old_to_new[row])
    src = torch.where(src == mother, at, src)  # the new cell takes over the mother's targets
    banks["strength"] = net.banks["strength"].detach().clone()
    t.edge_index = torch.stack([src, dst])
    _cell_order(net, order, new_id_at=at)
    t.level[at + 1 :] += 1
    t.level[at] = lv + 1
    t.role[at] = HIDDEN
    t.parent[at] = t.cell_id[mother]
    _set_banks(net, banks)
    _append_edges(net, torch.tensor([[mother], [at]]), torch.ones(1))
    _finish(net)
    return at


def add_edge(net: WideNetwork, src: int, dst: int) -> None:
    """Dendritic growth: edge ``src → dst`` at strength zero (``0 · o_src`` added)."""
    if int(net.tissue.level[src]) >= int(net.tissue.level[dst]):
        raise ValueError(f"an edge must go up a level; got rows {src} → {dst}")
    _append_edges(net, torch.tensor([[src], [dst]]), torch.zeros(1))
    _finish(net)


def widen_stream(net: WideNetwork, k: int, seed: int = 0) -> None:
    """Stream width ``D → D + k``. New channels start at zero everywhere (zero embedding
    columns, zero write columns); read rows and head rows for them are random, so their
    gradients are not zero. Every RMS norm over the stream sees a mean square smaller by
    ``D / (D + k)``; its scale is multiplied by ``sqrt(D / (D + k))`` to undo that."""
    D = net.cfg.d_stream
    gen = torch.Generator().manual_seed(seed)
    rescale = math.sqrt(D / (D + k))
    n = net.tissue.num_nodes
    banks = {k_: v.detach().clone() for k_, v in net.banks.items()}
    for name in STREAM_NORMS:
        banks[name] = torch.cat([banks[name] * rescale, torch.full((n, k), rescale)], dim=1)
    d = net.cfg.d_cell
    read = torch.randn(n, k, d, generator=gen) / math.sqrt(D + k)
    banks["w_read"] = torch.cat([banks["w_read"], read], dim=1)
    banks["w_write"] = torch.cat([banks["w_write"], torch.zeros(n, d, k)], dim=2)
    _set_banks(net, banks)
    V = net.cfg.vocab_size
    net.embed = nn.Parameter(torch.cat([net.embed.detach(), torch.zeros(V, k)], dim=1))
    head_rows = torch.randn(k, V, generator=gen) / math.sqrt(D + k)
    net.head = nn.Parameter(torch.cat([net.head.detach(), head_rows]))
    norm = torch.cat([net.head_norm.detach() * rescale, torch.full((k,), rescale)])
    net.head_norm = nn.Parameter(norm)
    net.cfg = replace(net.cfg, d_stream=D + k)


def _finish(net: WideNetwork) -> None:
    check_tissue(net.tissue)
    net.rebuild()
