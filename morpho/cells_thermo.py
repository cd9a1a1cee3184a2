"""The thermodynamic cell (DESIGN §3), cell type ``"thermo"``:


* an **inertial core**: a per-channel linear recurrence ``h_t = a ⊙ h_{t-1} + (1-a) ⊙ b ⊙ x_t``
  (an S4D/LRU-style diagonal SSM, computed with an FFT convolution) that also *predicts its
  next input* ``x̂_t = W_pred h_{t-1}``; the error ``‖x_t − x̂_t‖²/d`` is the cell's surprise;
* a **geometric core**: causal multi-head attention over the sequence;
* a **Maxwell's-demon gate** ``g_t = σ(k · log surprise_t + c + demand)`` that opens the
  geometric core only where the inertial core fails to predict;
* output ``y = x̂ + W_inert h + g ⊙ attn(x̂)``, then a small per-cell MLP with a residual
  (``x̂`` is the normalised input; cells born *in series* carry the raw input ``x`` instead,
  so that a new cell with zero output projections is the identity).

**Slow clocks.** A level with clock period ``p > 1`` coarse-grains its input into blocks of
``p`` tokens (the block mean), runs the recurrence and the predictor once per block, and
*holds* the state between ticks: token ``t`` sees the state of the last completed block,
``j(t) = ⌊(t + 1)/p⌋ − 1`` (no block yet: the zero state, as at ``t = 0`` on a fast clock).
Surprise is the error of predicting the next block mean, held the same way. The geometric
core and the MLP still run on every token, gated by the held surprise. ``p = 1`` is the
fast clock above, computed by the same code path as before.

**Gate skipping at inference** (DESIGN §3: compute follows gate activity). With
``gate_skip = s > 0`` and grad disabled, tokens whose gate is below ``s`` drop their term
``g·attn`` (an approximation bounded by ``s·|attn|`` per token) and their queries are never
computed: keys and values are projected for every token (an open query attends to every
earlier one), but queries, the attention and its output projection run only on the open
(cell, batch, position) triples, gathered per level into rows padded to the level's most
open row and attended with a causal mask on their original positions
(:meth:`ThermoCell._open_attention`); a cell with no open token skips its keys and values
too. A level with no open token never touches its geometric core; one whose most open row
exceeds ``ThermoCell.dense_crossover`` (default ``DENSE_CROSSOVER``) of the sequence runs
the dense core with the closed terms zeroed (same result, cheaper there). With grad enabled
(training) or ``s = 0`` the forward is the dense one, bit for bit.

The predictor is trained only by the local prediction loss (its inputs are detached), so
surprise measures what the recurrence fails to anticipate without bending the
representation toward predictability.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor

from morpho.cells import (
    Bank,
    CellType,
    LevelOutput,
    bank_matmul,
    binary_entropy,
    const_rows,
    normal_rows,
    register_cell_type,
    rms_norm,
)

if TYPE_CHECKING:
    from morpho.network import NetworkConfig

# Gate skipping falls back to the dense core once a level's most open (cell, batch) row holds
# more than this share of the sequence: there the padded, masked attention (every open query
# against all T keys) costs more than the dense causal one. Break-even measured on CPU, one
# thread, whole network with the compact core forced (benchmarks/throughput.py --mode infer
# --crossover 1): ~0.45 of T at d_cell 32, T 64; ~0.55 at d_cell 32, T 256; > 0.6 at
# d_cell 64, T 128.
DENSE_CROSSOVER = 0.5


def linear_recurrence(u: Tensor, log_a: Tensor) -> Tensor:
    """``h_t = a h_{t-1} + u_t`` along T for every cell and channel, via an FFT convolution.

    Shapes:
        u: (n, B, T, d); log_a: (n, d) with ``a = exp(log_a) ∈ (0, 1)``; returns (n, B, T, d).

    The gradient is hand-written (:class:`_FFTRecurrence`: one FFT of the incoming gradient,
    two inverse FFTs, the forward's spectra reused): 1.4× faster than autograd through the
    FFTs. Under ``create_graph`` (the double backward of :mod:`morpho.criticality`) it falls
    back to autograd through :func:`fft_recurrence`, so higher derivatives stay exact; under
    ``torch.func`` transforms (forward mode, vmap) the reference ops run throughout.
    """
    if not torch.is_grad_enabled() or not (u.requires_grad or log_a.requires_grad):
        return fft_recurrence(u, log_a)
    if torch._C._are_functorch_transforms_active():  # torch.func.jvp/vmap/...: plain ops
        return fft_recurrence(u, log_a)
    return _FFTRecurrence.apply(u, log_a)


def fft_recurrence(u: Tensor, log_a: Tensor) -> Tensor:
    """:func:`linear_recurrence` in plain differentiable torch ops (the reference)."""
    return _fft_recurrence(u, log_a)[0]


def _fft_recurrence(u: Tensor, log_a: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The convolution ``h = a^t * u`` and its pieces: (h, kernel a^t, spectra of u and a^t)."""
    T = u.shape[2]
    t = torch.arange(T, device=u.device, dtype=u.dtype)
    kernel = torch.exp(log_a[:, :, None] * t)  # (n, d, T): a^t
    size = 2 * T  # zero padding to 2T: the circular convolution is the causal one
    u_f = torch.fft.rfft(u.permute(0, 1, 3, 2), n=size)  # (n, B, d, F)
    k_f = torch.fft.rfft(kernel, n=size)[:, None]  # (n, 1, d, F)
    h = torch.fft.irfft(u_f * k_f, n=size)[..., :T]  # (n, B, d, T)
    return h.permute(0, 1, 3, 2), kernel, u_f, k_f


class _FFTRecurrence(torch.autograd.Function):
    """``h = a^t * u`` (causal convolution along T) with a hand-written backward.

    With ``g = ∂L/∂h``: ``∂L/∂u_s = Σ_{t≥s} g_t a^{t-s}`` (a correlation: spectrum
    ``G · conj(K)``) and ``∂L/∂log a = Σ_l l a^l Σ_{b,t} g_t u_{t-l}`` (spectrum
    ``Σ_b G · conj(U)``); both zero-padded to 2T like the forward.
    """

    @staticmethod
    def forward(ctx, u: Tensor, log_a: Tensor) -> Tensor:  # type: ignore[override]
        h, kernel, u_f, k_f = _fft_recurrence(u, log_a)
        ctx.save_for_backward(u, log_a, kernel, u_f, k_f)
        return h.contiguous()  # (n, B, T, d) rows: the projections read it without a copy

    @staticmethod
    def backward(ctx, g: Tensor) -> tuple[Tensor | None, Tensor | None]:  # type: ignore[override]
        u, log_a, kernel, u_f, k_f = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph: differentiate the reference instead
            with torch.enable_grad():
                h = fft_recurrence(u, log_a)
            wrt = [x for x, need in zip((u, log_a), ctx.needs_input_grad[:2], strict=True) if need]
            grads = iter(torch.autograd.grad(h, wrt, g, create_graph=True))
            need_u, need_a = ctx.needs_input_grad[:2]
            grad_u = next(grads) if need_u else None
            return grad_u, next(grads) if need_a else None
        T = g.shape[2]
        size = 2 * T
        g_f = torch.fft.rfft(g.permute(0, 1, 3, 2), n=size)  # (n, B, d, F)
        grad_u = grad_log_a = None
        if ctx.needs_input_grad[0]:
            grad_u = torch.fft.irfft(g_f * k_f.conj(), n=size)[..., :T].permute(0, 1, 3, 2)
        if ctx.needs_input_grad[1]:
            grad_k = torch.fft.irfft((g_f * u_f.conj()).sum(1), n=size)[..., :T]  # (n, d, T)
            lags = torch.arange(T, device=g.device, dtype=g.dtype)
            grad_log_a = (grad_k * kernel * lags).sum(-1)  # ∂a^l/∂log a = l a^l
        return grad_u, grad_log_a


@dataclass(frozen=True)
class ThermoConfig:
    """Settings of the thermodynamic cell (read from ``[network]``)."""

    n_heads: int = 2  # attention heads of the geometric core
    mlp_ratio: int = 2  # hidden width of a cell's MLP, in multiples of d_cell
    gate_skip: float = 0.0  # inference: tokens with gate < this skip the geometric core (0: off)
    gate_skip_backward: float = 0.0  # training: ... skip the core's backward (forward exact)

    def __post_init__(self) -> None:
        if self.n_heads < 1:
            raise ValueError(f"n_heads must be >= 1; got {self.n_heads}")
        for name in ("gate_skip", "gate_skip_backward"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1]; got {getattr(self, name)}")


class ThermoCell(CellType):
    """The thermodynamic cell of DESIGN §3 (inertial core + geometric core + demon gate).

    Its output projections (``w_inert``, ``w_attn_out``, ``w_mlp2``) start at zero in a cell
    born in series, so the newborn relays its raw input; every other bank is copied.
    """

    Config = ThermoConfig
    dense_crossover = DENSE_CROSSOVER  # gate skipping: widest open row share → dense core

    def __init__(self, cfg: ThermoConfig | None = None, **settings: Any) -> None:
        super().__init__(cfg, **settings)
        self.n_heads = self.cfg.n_heads
        self.mlp_ratio = self.cfg.mlp_ratio
        self.gate_skip = self.cfg.gate_skip  # inference: gates below this skip the core
        self.gate_skip_backward = self.cfg.gate_skip_backward  # training: no core backward

    @contextlib.contextmanager
    def exact_backward(self) -> Iterator[None]:
        """The dense backward meanwhile (``gate_skip_backward`` 0), restored afterwards."""
        skip_backward, self.gate_skip_backward = self.gate_skip_backward, 0.0
        try:
            yield
        finally:
            self.gate_skip_backward = skip_backward

    @classmethod
    def config_from(cls, network: NetworkConfig) -> ThermoConfig:
        cfg = super().config_from(network)
        if network.d_cell % cfg.n_heads:
            raise ValueError(
                f"d_cell must be a positive multiple of n_heads={cfg.n_heads}; got {network.d_cell}"
            )
        if network.width != network.d_cell:
            raise ValueError(
                f"cell type 'thermo' reads and writes d_cell channels: d_stream must be unset "
                f"or equal to d_cell={network.d_cell}; got {network.d_stream}"
            )
        return cfg

    def banks(self, d: int) -> dict[str, Bank]:
        m = self.mlp_ratio * d

        ones = const_rows((d,), 1.0)

        def gate(n: int, gen: torch.Generator) -> Tensor:
            return torch.tensor([1.0, 0.0]).repeat(n, 1)

        def decay(n: int, gen: torch.Generator) -> Tensor:
            # decays spread over [0.5, 0.98] per channel: a bank of time scales (as in S4D/LRU)
            a = torch.linspace(0.5, 0.98, d).expand(n, d)
            return torch.log(a / (1 - a)).clone()

        return {
            "norm": Bank((d,), ones),  # RMSNorm scale of the aggregated input
            "decay": Bank((d,), decay),  # logit of the recurrence's per-channel decay a
            "w_in": Bank((d,), ones),  # per-channel input scale b
            "w_pred": Bank((d, d), const_rows((d, d), 0.0)),  # next-input predictor from h_{t-1}
            # inertial-core output projection
            "w_inert": Bank((d, d), normal_rows((d, d), 0.5 / math.sqrt(d)), series="zero"),
            "w_qkv": Bank((d, 3 * d), normal_rows((d, 3 * d), 1 / math.sqrt(d))),  # q, k, v
            # geometric core output projection
            "w_attn_out": Bank((d, d), normal_rows((d, d), 0.5 / math.sqrt(d)), series="zero"),
            "gate": Bank((2,), gate),  # [slope on log-surprise, bias]
            "mlp_norm": Bank((d,), ones),
            "w_mlp1": Bank((d, m), normal_rows((d, m), 1 / math.sqrt(d))),
            "w_mlp2": Bank((m, d), normal_rows((m, d), 0.5 / math.sqrt(m)), series="zero"),
        }

    def forward_level(
        self,
        banks: dict[str, Tensor],
        x: Tensor,
        demand: Tensor | None,
        clock: int = 1,
        raw_skip: Tensor | None = None,
    ) -> LevelOutput:
        n, B, T, d = x.shape
        xn = rms_norm(x) * banks["norm"][:, None, None, :]  # (n, B, T, d)
        a = torch.sigmoid(banks["decay"])  # (n, d)
        if clock == 1:
            h, err = self._inertial(banks, xn, a)  # (n, B, T, d), (n, B, T)
            aux_loss = err.mean(dim=(1, 2)).sum()
        else:
            h, err, aux_loss = self._inertial_slow(banks, xn, a, clock)

        logit = banks["gate"][:, 0, None, None] * torch.log(err.detach() + 1e-4)
        logit = logit + banks["gate"][:, 1, None, None]
        if demand is not None:
            logit = logit + demand  # (n, B, T) top-down drive from the level above
        g = torch.sigmoid(logit)  # (n, B, T)

        skip = xn if raw_skip is None else torch.where(raw_skip.view(n, 1, 1, 1), x, xn)
        y = bank_matmul(h, banks["w_inert"], add=skip)  # skip + W_inert h
        y = self._add_geometric(y, xn, g, banks["w_qkv"], banks["w_attn_out"])
        w1 = banks["mlp_norm"][:, :, None] * banks["w_mlp1"]  # the norm's scale, folded in
        z = F.gelu(bank_matmul(rms_norm(y), w1))
        y = bank_matmul(z, banks["w_mlp2"], add=y)
        with torch.no_grad():
            stats = (err.mean(dim=(1, 2)), g.mean(dim=(1, 2)))
            entropy = binary_entropy(g).mean(dim=(1, 2))  # (n,) the demon's uncertainty
        return LevelOutput(y, aux_loss, g, *stats, gate_entropy=entropy)

    @staticmethod
    def _inertial(banks: dict[str, Tensor], xn: Tensor, a: Tensor) -> tuple[Tensor, Tensor]:
        """Fast clock: state ``h`` (n, B, T, d) and surprise (n, B, T) on every token."""
        T = xn.shape[2]
        u = (1 - a)[:, None, None, :] * banks["w_in"][:, None, None, :] * xn
        h = linear_recurrence(u, F.logsigmoid(banks["decay"]))  # (n, B, T, d)
        # surprise: error of predicting x_t from h_{t-1} (the zero state at t = 0); the
        # predictor sees detached inputs
        pred = bank_matmul(h.detach(), banks["w_pred"])  # pred[t] predicts x_{t+1}
        target = xn.detach()
        err = (target[:, :, 1:] - pred[:, :, : T - 1]).pow(2).mean(-1)  # (n, B, T-1)
        return h, torch.cat([target[:, :, 0].pow(2).mean(-1, keepdim=True), err], dim=2)

    @staticmethod
    def _inertial_slow(
        banks: dict[str, Tensor], xn: Tensor, a: Tensor, p: int
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Slow clock of period ``p``: block means → recurrence per block → held per token.

        Returns the held state (n, B, T, d), the held surprise (n, B, T) and the local
        prediction loss over complete blocks.
        """
        n, B, T, d = xn.shape
        nb = T // p  # complete blocks; a trailing partial block never ticks
        if nb == 0:  # the sequence ends before the first tick: zero state throughout
            err = xn.detach().pow(2).mean(-1)
            return xn.new_zeros(n, B, T, d), err, xn.new_zeros(()) + 0.0 * banks["w_pred"].sum()
        xb = xn[:, :, : nb * p].reshape(n, B, nb, p, d).mean(3)  # (n, B, nb, d) coarse input
        u = (1 - a)[:, None, None, :] * banks["w_in"][:, None, None, :] * xb
        hb = linear_recurrence(u, F.logsigmoid(banks["decay"]))  # (n, B, nb, d)
        hb_prev = F.pad(hb.detach(), (0, 0, 1, 0))[:, :, :nb]
        pred = bank_matmul(hb_prev, banks["w_pred"])
        err_b = (xb.detach() - pred).pow(2).mean(-1)  # (n, B, nb)
        # hold: token t reads block j(t) = floor((t+1)/p) - 1; index 0 is "no block yet"
        j = torch.div(torch.arange(1, T + 1, device=xn.device), p, rounding_mode="floor")
        h = F.pad(hb, (0, 0, 1, 0)).index_select(2, j)  # (n, B, T, d)
        before = xn.detach().pow(2).mean(-1)  # zero-state prediction error before a tick
        err = torch.where(j == 0, before, F.pad(err_b, (1, 0)).index_select(2, j))
        return h, err, err_b.mean(dim=(1, 2)).sum()

    def _add_geometric(
        self, y: Tensor, xn: Tensor, g: Tensor, w_qkv: Tensor, w_out: Tensor
    ) -> Tensor:
        """``y + g ⊙ attn(xn)``; at inference with ``gate_skip`` only the open tokens' terms.

        On the compact path ``y`` (a temporary of the caller's) is updated in place.

        Shapes:
            y, xn: (n, B, T, d); g: (n, B, T); returns (n, B, T, d).
        """
        if torch.is_grad_enabled():
            if self.gate_skip_backward > 0:
                return self._add_geometric_train(y, xn, g, w_qkv, w_out)
            return y + g[..., None] * self._attention(xn, w_qkv, w_out)
        if self.gate_skip <= 0:
            return y + g[..., None] * self._attention(xn, w_qkv, w_out)
        is_open = g >= self.gate_skip  # (n, B, T)
        widest = int(is_open.sum(2).max())  # open queries in the most open (cell, batch) row
        if widest == 0:
            return y  # every gate shut: the geometric core is never computed
        if widest > self.dense_crossover * xn.shape[2]:
            return y + torch.where(is_open, g, 0.0)[..., None] * self._attention(xn, w_qkv, w_out)
        return self._add_open(y, xn, g, is_open, widest, w_qkv, w_out)

    def _add_geometric_train(
        self, y: Tensor, xn: Tensor, g: Tensor, w_qkv: Tensor, w_out: Tensor
    ) -> Tensor:
        """Training with ``gate_skip_backward = θ``: the forward is the dense one (the value
        ``y + g ⊙ attn(xn)`` bit for bit, and the gate's gradient ``⟨∂L/∂y, attn⟩`` on every
        token), but the core's own backward runs on the open queries (``g ≥ θ``) only: closed
        tokens pass no gradient into ``xn``, ``w_qkv`` and ``w_out`` (terms scaled by
        ``g < θ``, dropped — so the levels below see a slightly different gradient). The
        dense attention runs without a graph; the open queries are recomputed compactly with
        one, entering as ``att − att.detach()`` (value 0, gradient ``g ∂att``); past the
        dense crossover the dense core computes the same cut gradient. Reads the widest open
        row on the host once per level (not sync-free). Under ``torch.func`` transforms
        (forward mode) the plain dense core runs.
        """
        n, B, T, d = xn.shape
        is_open = g.detach() >= self.gate_skip_backward  # (n, B, T)
        if torch._C._are_functorch_transforms_active():  # forward mode ignores no_grad
            return y + g[..., None] * self._attention(xn, w_qkv, w_out)
        widest = int(is_open.sum(2).max())  # a host read: the compact rows' padding
        if widest > self.dense_crossover * T:  # dense core, the same gradient cut
            attn = self._attention(xn, w_qkv, w_out)
            keep = torch.where(is_open, g.detach(), 0.0)[..., None]
            return y + g[..., None] * attn.detach() + keep * (attn - attn.detach())
        with torch.set_grad_enabled(widest > 0):  # keys and values get the open queries' grad
            qkv = bank_matmul(xn, w_qkv)  # (n, B, T, 3d)
        with torch.no_grad():
            attn = bank_matmul(self._attend(qkv), w_out)
        y = y + g[..., None] * attn
        if widest == 0:
            return y
        rows = is_open.view(n * B, T)
        pos, flat = self._query_slots(rows, widest)
        q = qkv[..., :d].reshape(n * B * T, d).index_select(0, flat).view(n, B, widest, d)
        att = self._open_attention(q, pos, qkv[..., d:], w_out)  # (n*B*Tq, d)
        weight = (g.detach().flatten()[flat] * rows.flatten()[flat])[:, None]
        return y.reshape(n * B * T, d).index_add(0, flat, weight * (att - att.detach())).view_as(y)

    @staticmethod
    def _query_slots(rows: Tensor, widest: int) -> tuple[Tensor, Tensor]:
        """Each row's open positions first, in order, padded with closed ones to ``widest``.

        Shapes:
            rows: (R, T) bool, open tokens; returns pos (R, Tq) long, the query positions,
            and flat (R*Tq,), the same as rows of a (R*T, ·) flattening.
        """
        T = rows.shape[1]
        pos = torch.sort(rows.logical_not().to(torch.uint8), dim=1, stable=True).indices
        pos = pos[:, :widest]
        return pos, (pos + T * torch.arange(len(rows), device=pos.device)[:, None]).flatten()

    def _add_open(
        self,
        y: Tensor,
        xn: Tensor,
        g: Tensor,
        is_open: Tensor,
        widest: int,
        w_qkv: Tensor,
        w_out: Tensor,
    ) -> Tensor:
        """The compact path of :meth:`_add_geometric`: gather, attend, scatter-add."""
        n, B, T, d = xn.shape
        cells = is_open.flatten(1).any(1).nonzero().flatten()  # (m,) cells with an open token
        if len(cells) < n:  # a fully shut cell skips its keys and values too
            xn, g, is_open = xn[cells], g[cells], is_open[cells]
            w_qkv, w_out = w_qkv[cells], w_out[cells]
        m = len(cells)
        rows = is_open.view(m * B, T)
        pos, flat = self._query_slots(rows, widest)  # the padding (closed tokens) gets g = 0
        xq = xn.reshape(m * B * T, d).index_select(0, flat).view(m, B, widest, d)
        q = bank_matmul(xq, w_qkv[..., :d])  # queries of the open tokens only
        att = self._open_attention(q, pos, bank_matmul(xn, w_qkv[..., d:]), w_out)
        gated = (g.flatten()[flat] * rows.flatten()[flat])[:, None] * att
        y_rows = (cells[:, None] * B + torch.arange(B, device=pos.device)).flatten()  # (m*B,)
        into_y = (pos + T * y_rows[:, None]).flatten()  # the same queries as rows of y
        return y.view(n * B * T, d).index_add_(0, into_y, gated).view(n, B, T, d)

    def _attention(self, xn: Tensor, w_qkv: Tensor, w_out: Tensor) -> Tensor:
        return bank_matmul(self._attend(bank_matmul(xn, w_qkv)), w_out)

    def _attend(self, qkv: Tensor) -> Tensor:
        """Causal multi-head attention of projected ``qkv`` (n, B, T, 3d) → (n, B, T, d)."""
        n, B, T, d3 = qkv.shape
        H, d = self.n_heads, d3 // 3
        # unbind, then transpose each: the backward stacks the three gradients straight into
        # the projection's layout (a permute of the stack would cost one more copy)
        q, k, v = (p.transpose(1, 2) for p in qkv.view(n * B, T, 3, H, d // H).unbind(2))
        att = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (n*B, H, T, d/H)
        return att.transpose(1, 2).reshape(n, B, T, d)

    def _open_attention(self, q: Tensor, pos: Tensor, kv: Tensor, w_out: Tensor) -> Tensor:
        """Causal attention for the queries at positions ``pos`` only, over all keys.

        Shapes:
            q: (n, B, Tq, d) projected queries; pos: (n*B, Tq) long, their positions per
            (cell, batch) row; kv: (n, B, T, 2d) projected keys and values of every token;
            returns (n*B*Tq, d), the projected attention output of those queries.
        """
        n, B, Tq, d = q.shape
        T, H = kv.shape[2], self.n_heads
        q = q.reshape(n * B, Tq, H, d // H).transpose(1, 2)  # (n*B, H, Tq, d/H)
        k, v = (p.transpose(1, 2) for p in kv.reshape(n * B, T, 2, H, d // H).unbind(2))
        causal = torch.arange(T, device=q.device) <= pos[..., None]  # (n*B, Tq, T)
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=causal[:, None])
        att = att.transpose(1, 2).reshape(n, B, Tq, d)
        return bank_matmul(att, w_out).view(n * B * Tq, d)

    def flops_per_token(self, d: int, seq_len: int, clock: int = 1) -> tuple[float, float]:
        m = self.mlp_ratio * d
        # predictor and inertial projection run once per tick; the MLP on every token
        dense = 2 * (d * d + d * d) / clock + 2 * m * d * 2
        blocks = max(1, seq_len // clock)
        recurrence = 2 * d * 2 * math.log2(2 * blocks) / clock  # FFT convolution, per token
        geometric = 2 * (3 * d * d + d * d) + 2 * 2 * (seq_len / 2) * d  # proj + causal attn
        return dense + recurrence, geometric


register_cell_type("thermo", ThermoCell)
