"""The wide-stream cell (``"wide"``): cells read and write a shared ``D``-wide residual stream.

Every edge carries a ``D``-wide state (``D = network.d_stream``); a cell works in its own
``d``-wide core (``d = network.d_cell``, usually ``d < D``) and talks to the stream through
its own read and write projections. For a cell with aggregated input ``x`` (B, T, D)::

    u = rms_norm(x) ⊙ ν @ R                   read projection R (D, d)
    v = causal depthwise conv_K(u)            K taps per channel (precise short range)
    h_t = a_t ⊙ h_{t-1} + (1 - a_t) ⊙ b ⊙ i_t ⊙ v_t      inertial core (diagonal recurrence)
    err_t = ‖rms_norm(u_t) − P h_{t-1}‖² / d  surprise (P trained on detached inputs by the
                                              local loss only)
    g_t = σ(k log(err_t + 1e-4) + c + demand) demon gate
    z = v + W_h (h ⊙ gelu(v W_o)) + g ⊙ attn(v);  z += MLP(rms_norm(z))
    o = x + z @ W_c                           write projection W_c (d, D): raw residual

``a_t`` is the *selective* decay ``a_t = a^{2σ(v_t W_r + β_r)}`` with input gate
``i_t = σ(v_t W_i + β_i)`` (``recurrence="selective"``, an RG-LRU-like form: De et al. 2024)
or the time-invariant ``a_t = a``, ``i_t = 1`` (``"lti"``). The measured design and its
ablations: benchmarks/cell_design.md.

Edits (declared banks, :mod:`morpho.edits`): every bank is copied by a split (the network
halves the outgoing strengths and readout weights: ``s/2 · o + s/2 · o = s · o``); the write
projection is ``series="zero"``, so a cell born in series returns its input (``o = x``) —
the residual is always raw, so ``raw_skip`` changes nothing. Every level runs on the fast
clock (``clock_ratio`` must be 1).

Widening (:func:`morpho.edits.widen_edit`, ``d → d'``) gives every cell ``d' − d`` new
channels that are zero at birth wherever an old channel or a norm reads them: the new
columns of ``R`` are zero (so ``u``, ``v`` and ``h`` are zero there), as are the new
columns of ``W_h``, ``P`` and the attention's output projection (the new parts of ``z``);
the new rows of ``W_c`` (write), of the attention's output projection (new heads: the head
width ``d/n_heads`` is kept, heads are added) and of the MLP's second layer (new hidden
units) are zero too; every other new entry is drawn from the bank's init. The norms over
``d`` (surprise target and error, the MLP's pre-norm) then average over the width before
widening (``norm_width``), so the zeros leave them, the gate and every output unchanged,
and no gradient reaches an old entry through a new one: old entries train on exactly as
before, while the new write rows get a gradient through the MLP at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from morpho.cells import (
    Bank,
    CellType,
    ChannelAxis,
    LevelOutput,
    bank_matmul,
    binary_entropy,
    channel_mean,
    const_rows,
    normal_rows,
    register_cell_type,
    rms_norm,
)
from morpho.cells_thermo import linear_recurrence

if TYPE_CHECKING:
    from morpho.network import NetworkConfig

RECURRENCES = ("lti", "selective")
WIDEN_NORMS = ("keep", "rescale")
# floor of a selective decay's log: a_t >= e^-6 (a state kept 1/400 per step is gone anyway);
# keeps exp(±L) of a chunk of SELECTIVE_CHUNK tokens inside float32 (|L| <= 48 < 88)
LOG_DECAY_FLOOR = -6.0
SELECTIVE_CHUNK = 8


def causal_conv(u: Tensor, taps: Tensor) -> Tensor:
    """Depthwise causal convolution along T, each cell with its own taps.

    Shapes:
        u: (n, B, T, d); taps: (n, K, d), the last tap weighting the current token;
        returns (n, B, T, d).
    """
    K, T = taps.shape[1], u.shape[2]
    padded = F.pad(u, (0, 0, K - 1, 0))  # (n, B, T + K - 1, d)
    out = padded[:, :, K - 1 :] * taps[:, None, None, K - 1]
    for k in range(K - 1):
        out = out + padded[:, :, k : k + T] * taps[:, None, None, k]
    return out


def selective_recurrence(u: Tensor, log_a: Tensor, chunk: int = SELECTIVE_CHUNK) -> Tensor:
    """``h_t = a_t h_{t-1} + u_t`` with a time-varying decay, chunk by chunk.

    Inside a chunk, ``h_t = e^{L_t} Σ_{s≤t} e^{−L_s} u_s`` with ``L_t`` the cumulative
    ``log a`` since the chunk's start (two exps and a cumsum; Heinsen 2023's log-space scan,
    cut into chunks so that ``e^{−L}`` stays finite: ``log a`` is floored at
    ``LOG_DECAY_FLOOR``); the state entering a chunk is carried in, decayed by ``e^{L_t}``.
    T is zero-padded to whole chunks.

    Shapes:
        u, log_a: (n, B, T, d), ``log_a ≤ 0``; returns (n, B, T, d).
    """
    n, B, T, d = u.shape
    C = min(chunk, T)
    pad = -T % C
    u = F.pad(u, (0, 0, 0, pad)).view(n, B, -1, C, d)  # (n, B, chunks, C, d)
    log_a = F.pad(log_a.clamp(min=LOG_DECAY_FLOOR), (0, 0, 0, pad))
    L = log_a.view(n, B, -1, C, d).cumsum(3)
    carry = L.exp()  # decay from a chunk's start to each of its tokens
    inside = carry * (torch.exp(-L) * u).cumsum(3)
    h = u.new_zeros(n, B, 1, d)
    outs = []
    for c in range(inside.shape[2]):
        out = inside[:, :, c] + carry[:, :, c] * h
        outs.append(out)
        h = out[:, :, -1:]
    return torch.cat(outs, 2)[:, :, :T]


@dataclass(frozen=True)
class WideCellConfig:
    """Settings of the wide-stream cell (``d_stream``, ``n_heads``, ``mlp_ratio``: from
    ``[network]``; the rest from ``[network.cell_options]``)."""

    d_stream: int | None = None  # D: width of the residual stream (None: d_cell)
    n_heads: int = 2  # attention heads of the geometric core
    mlp_ratio: int = 2  # hidden width of a cell's MLP in multiples of d_cell (0: no MLP)
    conv_taps: int = 4  # causal depthwise conv taps before the cores (0: off)
    recurrence: str = "selective"  # inertial core: "lti" | "selective"
    attention: bool = True  # geometric core on (False: inertial core only, no gate)
    gate: bool = True  # demon gate on (False: the geometric core always fully open)
    out_gate: bool = True  # inertial output h ⊙ gelu(v W_o) (multiplicative, as in Griffin)
    # channels the norms over d average over (None: d_cell); a widened cell keeps its width
    # before widening here, so that its new channels, zero at birth, leave the norms unchanged
    norm_width: int | None = None
    # how widening keeps the norms over d: "keep" their width (norm_width, above), or
    # "rescale" the gains they feed (the MLP's norm gain, the predictor), so that the widened
    # cell is a plain cell of the new width
    widen_norms: str = "keep"

    def __post_init__(self) -> None:
        if self.recurrence not in RECURRENCES:
            raise ValueError(
                f"unknown recurrence {self.recurrence!r}; expected one of: {', '.join(RECURRENCES)}"
            )
        if self.n_heads < 1 or self.mlp_ratio < 0 or self.conv_taps < 0:
            raise ValueError(
                f"n_heads must be >= 1, mlp_ratio and conv_taps >= 0; got {self.n_heads}, "
                f"{self.mlp_ratio}, {self.conv_taps}"
            )
        if self.widen_norms not in WIDEN_NORMS:
            raise ValueError(
                f"unknown widen_norms {self.widen_norms!r}; expected one of: "
                f"{', '.join(WIDEN_NORMS)}"
            )
        if self.norm_width is not None and self.norm_width < 1:
            raise ValueError(f"norm_width must be >= 1 (or unset); got {self.norm_width}")


class WideCell(CellType):
    """The wide-stream cell; see the module docstring."""

    Config = WideCellConfig

    @classmethod
    def config_from(cls, network: NetworkConfig) -> WideCellConfig:
        cfg = super().config_from(network)
        if cfg.d_stream is None:
            cfg = replace(cfg, d_stream=network.d_cell)
        if cfg.attention and network.d_cell % cfg.n_heads:
            raise ValueError(
                f"d_cell must be a positive multiple of n_heads={cfg.n_heads}; got {network.d_cell}"
            )
        if network.clock_ratio != 1:
            raise ValueError(
                f"cell type 'wide' runs every level on the fast clock: clock_ratio must be 1; "
                f"got {network.clock_ratio}"
            )
        return cfg

    @property
    def D(self) -> int:
        assert self.cfg.d_stream is not None  # set by config_from
        return int(self.cfg.d_stream)

    def banks(self, d: int) -> dict[str, Bank]:
        cfg, D, m = self.cfg, self.D, self.cfg.mlp_ratio * d

        def decay(n: int, gen: torch.Generator) -> Tensor:
            a = torch.linspace(0.5, 0.98, d).expand(n, d)  # a bank of time scales (S4D/LRU)
            return torch.log(a / (1 - a)).clone()

        def conv(n: int, gen: torch.Generator) -> Tensor:
            taps = torch.randn(n, cfg.conv_taps, d, generator=gen) * 0.1
            taps[:, -1] += 1.0  # the current token passes through; earlier taps start small
            return taps

        def b_select(n: int, gen: torch.Generator) -> Tensor:
            return torch.cat([torch.zeros(n, d), torch.full((n, d), 2.0)], dim=1)

        # widen_norms="rescale": d -> d' with the new channels zero scales a norm over d by
        # sqrt(d'/d); the MLP's norm gain takes sqrt(d/d'), the predictor of the normalised
        # read sqrt(d'/d) (its error, a mean over d of squares, is then unchanged)
        rescale = 0.5 if cfg.widen_norms == "rescale" and cfg.norm_width is None else 0.0
        fresh, zero = ChannelAxis(0), ChannelAxis(0, new="zero")
        fresh1, zero1 = ChannelAxis(1), ChannelAxis(1, new="zero")
        banks = {
            "norm": Bank((D,), const_rows((D,), 1.0)),  # RMS-norm scale of the stream read
            # the new channels read nothing at birth: u, v and h are zero there
            "w_read": Bank((D, d), normal_rows((D, d), 1 / math.sqrt(D)), channels=(zero1,)),
            "decay": Bank((d,), decay, channels=(fresh,)),  # logit of the base decay a
            "w_in": Bank((d,), const_rows((d,), 1.0), channels=(fresh,)),  # input scale b
            # next-read predictor from h_{t-1}
            "w_pred": Bank(
                (d, d), const_rows((d, d), 0.0), channels=(fresh, zero1), widen_power=rescale
            ),
            "w_inert": Bank(
                (d, d), normal_rows((d, d), 0.5 / math.sqrt(d)), channels=(fresh, zero1)
            ),
            # write projection: zero in a cell born in series, which then returns its input
            "w_write": Bank(
                (d, D), normal_rows((d, D), 0.5 / math.sqrt(d)), series="zero", channels=(zero,)
            ),
        }
        if cfg.conv_taps:
            banks["conv"] = Bank((cfg.conv_taps, d), conv, channels=(fresh1,))
        if cfg.out_gate:
            banks["w_ogate"] = Bank(
                (d, d), normal_rows((d, d), 1 / math.sqrt(d)), channels=(fresh, fresh1)
            )
        if cfg.recurrence == "selective":  # decay rate and input gate from v
            two = ChannelAxis(1, blocks=2)
            banks["w_select"] = Bank(
                (d, 2 * d), normal_rows((d, 2 * d), 1 / math.sqrt(d)), channels=(fresh, two)
            )
            banks["b_select"] = Bank((2 * d,), b_select, channels=(ChannelAxis(0, blocks=2),))
        if cfg.attention:
            qkv = ChannelAxis(1, blocks=3)  # q, k, v; each gains whole heads
            banks["w_qkv"] = Bank(
                (d, 3 * d), normal_rows((d, 3 * d), 1 / math.sqrt(d)), channels=(fresh, qkv)
            )
            banks["w_attn_out"] = Bank(
                (d, d), normal_rows((d, d), 0.5 / math.sqrt(d)), channels=(zero, zero1)
            )
            if cfg.gate:  # [slope on log-surprise, bias]
                banks["gate"] = Bank((2,), lambda n, gen: torch.tensor([1.0, 0.0]).repeat(n, 1))
        if m:
            banks["mlp_norm"] = Bank(
                (d,), const_rows((d,), 1.0), channels=(fresh,), widen_power=-rescale
            )
            banks["w_mlp1"] = Bank(
                (d, m), normal_rows((d, m), 1 / math.sqrt(d)), channels=(fresh, fresh1)
            )
            # new hidden units write nothing; the new channels' writes are read by nothing
            banks["w_mlp2"] = Bank(
                (m, d), normal_rows((m, d), 0.5 / math.sqrt(m)), channels=(zero, fresh1)
            )
        return banks

    def widened(self, network: NetworkConfig, d_cell: int) -> NetworkConfig:
        """Every cell with ``d_cell`` channels: heads of the same width are added, the
        stream width is pinned, the norms keep averaging over the width before widening.

        Raises:
            ValueError: with attention on, ``d_cell`` is not a multiple of the head width.
        """
        cfg, d = self.cfg, network.d_cell
        heads = network.n_heads
        if cfg.attention:
            head = d // heads
            if d_cell % head:
                raise ValueError(
                    f"cell type 'wide' widens by whole heads of width d_cell/n_heads = {head}: "
                    f"expected a multiple of {head}; got d_cell={d_cell}"
                )
            heads = d_cell // head
        options = dict(network.cell_options)
        if cfg.widen_norms == "keep" or cfg.norm_width:
            options["norm_width"] = cfg.norm_width or d
        return replace(network, d_cell=d_cell, d_stream=self.D, n_heads=heads, cell_options=options)

    def forward_level(
        self,
        banks: dict[str, Tensor],
        x: Tensor,
        demand: Tensor | None,
        clock: int = 1,
        raw_skip: Tensor | None = None,
    ) -> LevelOutput:
        """``n`` cells on their stream inputs ``x`` (n, B, T, D) → outputs (n, B, T, D)."""
        cfg = self.cfg
        u = bank_matmul(rms_norm(x) * banks["norm"][:, None, None], banks["w_read"])
        v = causal_conv(u, banks["conv"]) if cfg.conv_taps else u  # (n, B, T, d)
        h = self._inertial(banks, v)
        err = self._surprise(banks, h, u, cfg.norm_width)  # (n, B, T)
        if cfg.out_gate:
            h = h * F.gelu(bank_matmul(v, banks["w_ogate"]))
        z = bank_matmul(h, banks["w_inert"], add=v)
        g = torch.ones_like(err)
        if cfg.attention:
            if cfg.gate:
                gate = banks["gate"][:, :, None, None]
                logit = gate[:, 0] * torch.log(err.detach() + 1e-4) + gate[:, 1]
                g = torch.sigmoid(logit if demand is None else logit + demand)
            z = z + g[..., None] * self._attention(banks, v)
        if cfg.mlp_ratio:
            w1 = banks["mlp_norm"][:, :, None] * banks["w_mlp1"]
            zn = rms_norm(z, count=cfg.norm_width)
            z = bank_matmul(F.gelu(bank_matmul(zn, w1)), banks["w_mlp2"], add=z)
        o = bank_matmul(z, banks["w_write"], add=x)  # raw residual
        with torch.no_grad():
            stats = (err.mean(dim=(1, 2)), g.mean(dim=(1, 2)))
            entropy = binary_entropy(g).mean(dim=(1, 2))
        return LevelOutput(
            y=o,
            aux_loss=err.mean(dim=(1, 2)).sum(),  # trains the predictor P only
            gate=g,
            surprise=stats[0],
            gate_mean=stats[1],
            gate_entropy=entropy,
        )

    def _inertial(self, banks: dict[str, Tensor], v: Tensor) -> Tensor:
        """The diagonal recurrence of the core over ``v`` (n, B, T, d)."""
        log_a = F.logsigmoid(banks["decay"])[:, None, None]  # (n, 1, 1, d)
        b = banks["w_in"][:, None, None]
        if self.cfg.recurrence == "lti":
            return linear_recurrence((1 - log_a.exp()) * b * v, log_a[:, 0, 0])
        rate, gate_in = bank_matmul(v, banks["w_select"]).chunk(2, dim=-1)
        d = v.shape[-1]
        bias = banks["b_select"][:, None, None]
        log_at = 2 * torch.sigmoid(rate + bias[..., :d]) * log_a  # (n, B, T, d) ≤ 0
        u = (1 - log_at.exp()) * b * torch.sigmoid(gate_in + bias[..., d:]) * v
        return selective_recurrence(u, log_at)

    @staticmethod
    def _surprise(banks: dict[str, Tensor], h: Tensor, u: Tensor, count: int | None) -> Tensor:
        """Error of predicting the normalised next read from ``h_{t-1}`` (both detached);
        ``count``: the channels the norm and the error average over (None: all)."""
        target = rms_norm(u.detach(), count=count)
        pred = bank_matmul(h.detach(), banks["w_pred"])  # pred[t] predicts target[t + 1]
        err = channel_mean((target[:, :, 1:] - pred[:, :, :-1]).pow(2), count)
        first = channel_mean(target[:, :, :1].pow(2), count)
        return torch.cat([first, err], dim=2)  # (n, B, T)

    def _attention(self, banks: dict[str, Tensor], v: Tensor) -> Tensor:
        n, B, T, d = v.shape
        H = self.cfg.n_heads
        qkv = bank_matmul(v, banks["w_qkv"]).view(n * B, T, 3, H, d // H)
        q, k, val = (p.transpose(1, 2) for p in qkv.unbind(2))
        att = F.scaled_dot_product_attention(q, k, val, is_causal=True)
        return bank_matmul(att.transpose(1, 2).reshape(n, B, T, d), banks["w_attn_out"])

    def flops_per_token(self, d: int, seq_len: int, clock: int = 1) -> tuple[float, float]:
        cfg, D, m = self.cfg, self.D, self.cfg.mlp_ratio * d
        dense = 2.0 * (2 * D * d + 2 * d * d + 2 * m * d) + 2 * cfg.conv_taps * d
        if cfg.out_gate:
            dense += 2 * d * d
        if cfg.recurrence == "selective":
            dense += 2 * 2 * d * d + 2 * seq_len / 2 * d  # gates + the chunked scan
        gated = 2 * 4 * d * d + 2 * 2 * (seq_len / 2) * d if cfg.attention else 0.0
        return dense, gated


register_cell_type("wide", WideCell)
