"""Probes the scheduler runs at a growth round: edge gradients and the knockout test.

    grad = edge_gradients(out.captured, len(net.plan))   # (N, N) after the step's backward
    dloss = knockout_dloss(net, row, batch)              # the CE rise if the cell died

Each runs on what it is given and keeps nothing: the knockout test's forwards are dropped.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call

from morpho import distributed
from morpho.network import Network
from morpho.output import Capture
from morpho.tissue import HIDDEN


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
def knockout_dloss(
    net: Network, row: int, batch: tuple[Tensor, Tensor], base: Tensor | None = None
) -> float:
    """Rise of a batch's cross-entropy when cell ``row`` is knocked out (``base``: the
    intact network's cross-entropy on ``batch``, if already known).

    Knocking out = zeroing its outgoing edge strengths and readout weight, which is exactly
    the network after removing it (without bridges); the knocked-out forward runs on
    copies of the two banks (``functional_call``), so nothing of the network is touched,
    and both forwards' records are dropped. Averaged over data-parallel ranks so every
    rank decides alike.
    """
    x, y = batch
    strength, readout = net.banks["strength"], net.banks["readout"]
    out = (net.tissue.edge_index[0] == row).nonzero().flatten().to(strength.device)
    knocked_out = {
        "banks.strength": strength.index_fill(0, out, 0.0),
        "banks.readout": readout.index_fill(0, torch.tensor([row], device=readout.device), 0.0),
    }
    if base is None:
        base = F.cross_entropy(net(x).flatten(0, 1), y.flatten())
    logits = functional_call(net, knocked_out, (x,))
    delta = (F.cross_entropy(logits.flatten(0, 1), y.flatten()) - base).reshape(1)
    distributed.all_reduce_mean_([delta])
    return float(delta)


def knockout_all(net: Network, batch: tuple[Tensor, Tensor]) -> Tensor:
    """(N,) :func:`knockout_dloss` of every hidden cell on ``batch`` (NaN where a cell is
    not hidden): what removing each one would cost the loss now."""
    out = torch.full((net.tissue.num_nodes,), float("nan"))
    x, y = batch
    with torch.no_grad():
        base = F.cross_entropy(net(x).flatten(0, 1), y.flatten())
    for row in (net.tissue.role == HIDDEN).nonzero().flatten().tolist():
        out[row] = knockout_dloss(net, row, batch, base)
    return out
