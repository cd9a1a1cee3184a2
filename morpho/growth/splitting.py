"""The splitting matrix of each hidden cell (Splitting Steepest Descent, Liu et al. 2019).

    probe = splitting_probe(net, batch, generator)  # after a step; None if it cannot run
    probe["min_eig"], probe["direction"]            # (N,) and {bank: (N, *row)}

Split a cell with parameters ``θ`` (its rows of every ``split="copy"`` bank) into two
daughters that share its outgoing weights half and half, at ``θ + εv`` and ``θ − εv``
(:func:`morpho.edits.split_edit` ``offsets``): downstream they send
``½ y(θ + εv) + ½ y(θ − εv) = y(θ) + ½ ε² vᵀ∇²y v + O(ε³)``, so the loss changes by
``½ ε² vᵀ S v`` with the *splitting matrix*

    S = ∇²_θ ⟨G, y(θ)⟩,   G = ∂L/∂y held fixed

— the curvature of the cell's own output map weighted by the loss gradient it receives,
not the loss Hessian (its Gauss–Newton part cancels between the daughters). A split along
the eigenvector of S's most negative eigenvalue lowers the loss the most (to second order);
a cell whose S has no negative eigenvalue gains nothing by splitting.

The estimate, on the last training batch (up to ``max_batch`` sequences), for every hidden
cell at once: one whole forward and backward give each level's input ``x`` and ``G`` (from
the inputs' gradients through the outgoing strengths, and the readout's); then per level
the cells are run on the detached ``x`` (:meth:`~morpho.cells.CellType.forward_level`,
cells of a level are independent) and ``S v`` is a central difference of
``∇_θ ⟨G, y(θ)⟩`` at ``θ ± h·v`` (``h = fd · ‖θ‖`` per cell). Power iteration finds the
eigenvalue of largest magnitude, then, shifted by it, the most negative one and its
eigenvector: ``2 · iters`` products, each two level forwards and backwards. The whole
forward and backward are charged by a FLOP counter as a training step's; the level passes
are charged through :meth:`~morpho.network.Network.charge` (kind ``probe``: the level's
share of the tissue's dense forward FLOPs, ×3 with its backward). ACT (several passes) is
not supported: the probe returns None.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from morpho.network import EDGE_BANKS, Network
from morpho.tissue import HIDDEN, OUTPUT

Batch = tuple[Tensor, Tensor]


def copied_banks(net: Network) -> list[str]:
    """The banks a split copies (and may shift by ``±δ``)."""
    return [k for k in net.banks if k not in EDGE_BANKS and net.bank_specs[k].split == "copy"]


def output_gradients(net: Network, batch: Batch) -> tuple[list[Tensor], Tensor] | None:
    """Per level, the detached inputs ``x`` (n_l, B, T, d) and, for every row, ``G = ∂L/∂y``
    (N, B, T, d) of the cross-entropy on ``batch``; None under ACT."""
    x, y = batch
    out = net.run(x, capture=True)
    if len(out.captured) != 1 or out.logits is None:
        return None
    inputs = out.captured[0].inputs
    ce = F.cross_entropy(out.logits.flatten(0, 1), y.flatten())
    wrt = [out.state, *inputs]
    grads = torch.autograd.grad(ce, wrt, allow_unused=True)
    g_state = grads[0] if grads[0] is not None else torch.zeros_like(out.state)
    gx = torch.cat(
        [
            g if g is not None else torch.zeros_like(i)
            for g, i in zip(grads[1:], inputs, strict=True)
        ]
    )
    t = net.tissue
    src, dst = t.edge_index.to(gx.device)
    s = net.banks["strength"].detach().view(-1, 1, 1, 1)
    g_out = torch.zeros_like(gx).index_add_(0, src, s * gx[dst])  # Σ_b s_ab ∂L/∂x_b
    readout = net.banks["readout"].detach() * (t.role == OUTPUT).to(gx)
    g_out = g_out + readout.view(-1, 1, 1, 1) * g_state.detach()
    return [i.detach() for i in inputs], g_out.detach()


class _LevelProduct:
    """``v ↦ S v`` for the cells of one level (finite differences of ``∇_θ⟨G, y(θ)⟩``)."""

    def __init__(self, net: Network, li: int, x: Tensor, g: Tensor, fd: float) -> None:
        lp = net.plan[li]
        self.net, self.lp, self.x, self.g = net, lp, x, g
        self.names = copied_banks(net)
        self.rows = {k: v[lp.start : lp.end].detach() for k, v in net.banks.items()}
        theta = torch.cat([self.rows[k].reshape(len(x), -1) for k in self.names], 1)  # (n, P)
        self.h = fd * theta.norm(dim=1).clamp(min=1e-6)  # (n,)
        demand = net.top_down_demand() if net.cfg.demand_weight else None
        self.demand = None if demand is None else demand[lp.start : lp.end].view(-1, 1, 1)
        self.demand = None if self.demand is None else self.demand.detach()
        self.calls = 0

    def _grad(self, v: Tensor, sign: float) -> Tensor:
        """``∇_θ ⟨G, y⟩`` at ``θ + sign · h · v`` (n, P)."""
        shifted = dict(self.rows)
        params, offset = [], 0
        for k in self.names:
            row = self.rows[k]
            size = row[0].numel()
            step = (sign * self.h.view(-1, 1) * v[:, offset : offset + size]).view_as(row)
            shifted[k] = (row + step).requires_grad_(True)
            params.append(shifted[k])
            offset += size
        with torch.enable_grad():
            out = self.net.cell.forward_level(
                shifted, self.x, self.demand, clock=self.lp.clock, raw_skip=self.lp.raw_skip
            )
            inner = (out.y * self.g).sum()
            grads = torch.autograd.grad(inner, params, allow_unused=True)
        self.calls += 1
        return torch.cat(
            [
                (g if g is not None else torch.zeros_like(p)).reshape(len(p), -1)
                for g, p in zip(grads, params, strict=True)
            ],
            1,
        )

    def __call__(self, v: Tensor) -> Tensor:
        return (self._grad(v, 1.0) - self._grad(v, -1.0)) / (2 * self.h.view(-1, 1))


def _unit(v: Tensor) -> Tensor:
    return v / v.norm(dim=1, keepdim=True).clamp(min=1e-12)


def min_eigen(product: _LevelProduct, n: int, p: int, iters: int, gen: torch.Generator):
    """Per cell, the most negative eigenvalue of S and its unit eigenvector (power iteration
    for the largest magnitude, then on ``S − σI`` with ``σ`` above it)."""
    v = _unit(torch.randn(n, p, generator=gen).to(product.x))
    for _ in range(iters):
        v = _unit(product(v))
    sigma = (v * product(v)).sum(1).abs().view(-1, 1) * 1.05 + 1e-12  # ≥ |λ| of largest |λ|
    v = _unit(torch.randn(n, p, generator=gen).to(product.x))
    for _ in range(iters):
        v = _unit(sigma * v - product(v))  # the dominant eigenvector of σI − S: S's smallest
    sv = product(v)
    return (v * sv).sum(1), v


@torch.no_grad()
def splitting_probe(
    net: Network,
    batch: Batch,
    generator: torch.Generator,
    iters: int = 8,
    fd: float = 1e-3,
    max_batch: int = 4,
) -> dict[str, object] | None:
    """Every hidden cell's splitting matrix: ``{"min_eig": (N,), "direction": {bank:
    (N, *row)}, "theta_norm": (N,)}`` on CPU — NaN and zero where a cell is not hidden;
    None under ACT.

    The direction is a unit vector over the cell's copied rows (all banks together);
    ``theta_norm`` the norm of those rows.
    """
    x, y = batch
    with torch.enable_grad():
        grads = output_gradients(net, (x[:max_batch], y[:max_batch]))
    if grads is None:
        return None
    inputs, g_out = grads
    t = net.tissue
    names = copied_banks(net)
    n_all = t.num_nodes
    lam = torch.full((n_all,), float("nan"))
    rows = torch.cat([net.banks[k].detach().reshape(n_all, -1) for k in names], 1)
    theta_norm = rows.norm(dim=1).cpu().float()
    direction = {k: torch.zeros(n_all, *net.banks[k].shape[1:]) for k in names}
    hidden = t.role == HIDDEN
    for li, lp in enumerate(net.plan):
        if not bool(hidden[lp.start : lp.end].any()):
            continue
        product = _LevelProduct(net, li, inputs[li], g_out[lp.start : lp.end], fd)
        p = sum(net.banks[k][0].numel() for k in names)
        value, vec = min_eigen(product, lp.end - lp.start, p, iters, generator)
        _charge(net, lp.end - lp.start, inputs[li], product.calls)
        keep = hidden[lp.start : lp.end]
        lam[lp.start : lp.end] = torch.where(keep, value.cpu().float(), float("nan"))
        offset = 0
        for k in names:
            size = net.banks[k][0].numel()
            part = vec[:, offset : offset + size].cpu().float() * keep.view(-1, 1)
            direction[k][lp.start : lp.end] = part.view(-1, *net.banks[k].shape[1:])
            offset += size
    return {"min_eig": lam, "direction": direction, "theta_norm": theta_norm}


def _charge(net: Network, n_cells: int, x: Tensor, calls: int) -> None:
    """Charge ``calls`` forward+backward passes of ``n_cells`` cells on ``x`` (n, B, T, d)."""
    tokens, seq_len = x.shape[1] * x.shape[2], x.shape[2]
    head = 2.0 * net.cfg.width * net.cfg.vocab_size
    tissue = net.flops_per_token(seq_len, gate=1.0) - head
    share = tissue * n_cells / max(1, net.tissue.num_nodes)
    net.charge("probe", 3.0 * share * tokens * calls)
