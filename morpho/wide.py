"""A wide-stream wiring of thermodynamic cells: cells read and write a shared residual width.

Every edge carries a ``D``-wide residual state (``D = d_stream``); a cell works in its own
``d``-wide core (``d = d_cell``, usually ``d < D``) and talks to the stream through its own
projections. For cell ``c`` with incoming edges ``a → c`` of strength ``s_ac``::

    x_c = Σ_a s_ac o_a                       (input cells: x_c = embedding)      (B, T, D)
    u_c = rms_norm(x_c) ⊙ ν_c @ R_c           read projection R_c (D, d)          (B, T, d)
    ũ_c = causal depthwise conv_K(u_c)        K taps per channel (precise short range)
    h_t = a_t ⊙ h_{t-1} + (1 - a_t) ⊙ b ⊙ i_t ⊙ ũ_t      inertial core (diagonal recurrence)
    err_t = ‖n(u)_{t} − P h_{t-1}‖² / d       surprise: the core predicts its next read
    g_t = σ(k log(err_t + 1e-4) + c)          demon gate
    z = ũ + W_h (h ⊙ gelu(ũ W_o)) + g ⊙ attn(ũ);  z += MLP(rms_norm(z))   core output
    o_c = x_c + z @ W_c                       write projection W_c (d, D): raw residual
    readout = Σ_out r_c o_c → rms_norm → head

``a_t`` is the *selective* decay ``a_t = a^{2σ(ũ_t W_r + β_r)}`` with input gate
``i_t = σ(ũ_t W_i + β_i)`` (``recurrence="selective"``, an RG-LRU-like form, Griffin: De et al.
2024) or the time-invariant ``a_t = a``, ``i_t = 1`` (``"lti"``, the default cell's core).

The embedding reaches the readout along an identity path (``o = x + …``), and the edits of
growth stay function-preserving (tests/engine/test_wide.py):

* **split** (mitosis): both daughters copy every row, incoming edges are copied, outgoing
  strengths halved — ``s/2 · o + s/2 · o = s · o``;
* **series birth** (deepen): a cell with ``W_c = 0`` returns its input, ``o_c = x_c``;
* **dendrite**: an edge of strength 0 adds ``0 · o_a``;
* **stream widening** ``D → D + k``: new embedding columns and write columns are zero, so the
  new channels are zero; read rows and head rows for them may be random (they multiply
  zero); every RMS-norm scale over the stream is multiplied by ``sqrt(D / (D + k))``, which
  undoes the smaller mean square.

A prototype beside :class:`morpho.network.Network` (same model protocol as the trainer
expects, a tissue for the gate penalty and statistics); the banks are stacked per cell
and each level runs as one batched call, as there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from morpho.cells import bank_matmul, linear_recurrence, rms_norm
from morpho.tissue import OUTPUT, seed_tissue

RECURRENCES = ("lti", "selective")


@dataclass(frozen=True)
class WideConfig:
    """Shape of a wide-stream network."""

    vocab_size: int = 256  # tokens in the vocabulary (set by the task)
    d_stream: int = 96  # D: width of the residual state every edge carries
    d_cell: int = 40  # d: width of each cell's core
    level_sizes: tuple[int, ...] = (1, 1, 1, 1)  # seed cells per level
    n_heads: int = 2  # attention heads of the geometric core
    mlp_ratio: int = 2  # hidden width of a cell's MLP in multiples of d (0: no MLP)
    conv_taps: int = 4  # causal depthwise conv taps before the cores (0: off)
    recurrence: str = "selective"  # inertial core: "lti" | "selective"
    attention: bool = True  # geometric core on (False: inertial core only)
    gate: bool = True  # demon gate on (False: the geometric core always fully open)
    out_gate: bool = True  # inertial output h ⊙ gelu(ũ W_o) (multiplicative, as in Griffin)
    seed: int = 0  # initialisation seed

    def __post_init__(self) -> None:
        if self.recurrence not in RECURRENCES:
            raise ValueError(
                f"unknown recurrence {self.recurrence!r}; expected one of: {', '.join(RECURRENCES)}"
            )
        if self.d_cell < 1 or self.d_cell % self.n_heads or self.d_stream < 1:
            raise ValueError(
                f"d_cell must be a positive multiple of n_heads={self.n_heads} and d_stream "
                f">= 1; got d_cell={self.d_cell}, d_stream={self.d_stream}"
            )
        if len(self.level_sizes) < 2 or min(self.level_sizes) < 1:
            raise ValueError(f"level_sizes needs >= 2 levels of >= 1 cell; got {self.level_sizes}")


def bank_shapes(cfg: WideConfig) -> dict[str, tuple[int, ...]]:
    """Per-cell shape of every bank (the leading cell dimension left out)."""
    D, d, m = cfg.d_stream, cfg.d_cell, cfg.mlp_ratio * cfg.d_cell
    shapes: dict[str, tuple[int, ...]] = {
        "norm": (D,),  # RMS-norm scale of the stream the cell reads
        "w_read": (D, d),
        "decay": (d,),  # logit of the base decay a
        "w_in": (d,),  # per-channel input scale b
        "w_pred": (d, d),  # next-read predictor from h_{t-1}
        "w_inert": (d, d),
        "w_write": (d, D),
        "readout": (),
    }
    if cfg.conv_taps:
        shapes["conv"] = (cfg.conv_taps, d)
    if cfg.out_gate:
        shapes["w_ogate"] = (d, d)
    if cfg.recurrence == "selective":
        shapes["w_select"] = (d, 2 * d)  # decay rate and input gate from ũ
        shapes["b_select"] = (2 * d,)
    if cfg.attention:
        shapes["w_qkv"] = (d, 3 * d)
        shapes["w_attn_out"] = (d, d)
        if cfg.gate:
            shapes["gate"] = (2,)  # [slope on log-surprise, bias]
    if m:
        shapes["mlp_norm"] = (d,)
        shapes["w_mlp1"] = (d, m)
        shapes["w_mlp2"] = (m, d)
    return shapes


def init_rows(cfg: WideConfig, n: int, gen: torch.Generator) -> dict[str, Tensor]:
    """Fresh parameters for ``n`` cells, one tensor per bank."""
    D, d = cfg.d_stream, cfg.d_cell
    shapes = bank_shapes(cfg)

    def normal(name: str, std: float) -> Tensor:
        return torch.randn(n, *shapes[name], generator=gen) * std

    a = torch.linspace(0.5, 0.98, d).expand(n, d)  # a bank of time scales (S4D/LRU)
    rows = {
        "norm": torch.ones(n, D),
        "w_read": normal("w_read", 1 / math.sqrt(D)),
        "decay": torch.log(a / (1 - a)).clone(),
        "w_in": torch.ones(n, d),
        "w_pred": torch.zeros(n, d, d),
        "w_inert": normal("w_inert", 0.5 / math.sqrt(d)),
        "w_write": normal("w_write", 0.5 / math.sqrt(d)),
        "readout": torch.zeros(n),
    }
    if cfg.conv_taps:  # the current token passes through; earlier taps start small
        conv = normal("conv", 0.1)
        conv[:, -1] += 1.0
        rows["conv"] = conv
    if cfg.out_gate:
        rows["w_ogate"] = normal("w_ogate", 1 / math.sqrt(d))
    if cfg.recurrence == "selective":
        rows["w_select"] = normal("w_select", 1 / math.sqrt(d))
        rows["b_select"] = torch.cat([torch.zeros(n, d), torch.full((n, d), 2.0)], dim=1)
    if cfg.attention:
        rows["w_qkv"] = normal("w_qkv", 1 / math.sqrt(d))
        rows["w_attn_out"] = normal("w_attn_out", 0.5 / math.sqrt(d))
        if cfg.gate:
            rows["gate"] = torch.tensor([1.0, 0.0]).repeat(n, 1)
    if "w_mlp1" in shapes:
        m = shapes["w_mlp1"][1]
        rows["mlp_norm"] = torch.ones(n, d)
        rows["w_mlp1"] = normal("w_mlp1", 1 / math.sqrt(d))
        rows["w_mlp2"] = normal("w_mlp2", 0.5 / math.sqrt(m))
    return rows


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


# floor of a selective decay's log: a_t >= e^-6 (a state kept 1/400 per step is gone anyway);
# keeps exp(±L) of a chunk of SELECTIVE_CHUNK tokens inside float32 (|L| <= 48 < 88)
LOG_DECAY_FLOOR = -6.0
SELECTIVE_CHUNK = 8


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


class WideNetwork(nn.Module):
    """Embedding → a DAG of cells over a ``D``-wide residual state → head; see the module
    docstring. Follows the trainer's model protocol (a tissue, gate statistics, aux loss)."""

    def __init__(self, cfg: WideConfig) -> None:
        super().__init__()
        self.cfg = cfg
        gen = torch.Generator().manual_seed(cfg.seed)
        self.tissue = seed_tissue(cfg.level_sizes, seed=cfg.seed)
        rows = init_rows(cfg, self.tissue.num_nodes, gen)
        is_out = self.tissue.role == OUTPUT
        rows["readout"] = torch.where(is_out, 1.0 / int(is_out.sum()), 0.0)
        dst = self.tissue.edge_index[1]
        fan_in = torch.bincount(dst, minlength=self.tissue.num_nodes).clamp(min=1)
        rows["strength"] = 1.0 / fan_in[dst].float()  # each cell sees a unit-scale input
        self.banks = nn.ParameterDict({k: nn.Parameter(v) for k, v in rows.items()})
        D = cfg.d_stream
        self.embed = nn.Parameter(torch.randn(cfg.vocab_size, D, generator=gen))
        self.head_norm = nn.Parameter(torch.ones(D))
        self.head = nn.Parameter(torch.randn(D, cfg.vocab_size, generator=gen) / math.sqrt(D))
        self.step = 0
        self.stats: dict[str, Tensor] = {}
        self.aux_loss: Tensor = torch.zeros(())
        self.gate_activity: Tensor = torch.zeros(0)
        self.rebuild()

    def rebuild(self) -> None:
        """Recompute the level slices from the tissue (rows sorted by level)."""
        t = self.tissue
        _, counts = t.level.unique_consecutive(return_counts=True)
        ends = counts.cumsum(0).tolist()
        self.slices = [(e - int(c), e) for e, c in zip(ends, counts, strict=True)]
        self.levels = t.level.clone()

    # ------------------------------------------------------------------ forward
    def forward(self, tokens: Tensor) -> Tensor:
        """Shapes: tokens (B, T) long → logits (B, T, V)."""
        if tokens.dim() != 2 or tokens.dtype != torch.long:
            raise ValueError(
                f"tokens must be a (B, T) long tensor; got {tuple(tokens.shape)} {tokens.dtype}"
            )
        emb = self.embed[tokens]  # (B, T, D)
        state = self.forward_tissue(emb)
        return rms_norm(state) * self.head_norm @ self.head

    def forward_tissue(self, emb: Tensor) -> Tensor:
        """(B, T, D) embedded tokens → (B, T, D) readout state."""
        src, dst = self.tissue.edge_index
        strength = self.banks["strength"]
        outs: list[Tensor] = []  # (n_level, B, T, D) per level
        aux, gates, errs = [], [], []
        readout = torch.zeros_like(emb)
        for start, end in self.slices:
            n = end - start
            into = (dst >= start) & (dst < end)
            if start == 0:
                x = emb.expand(n, *emb.shape)
            else:
                x = self._aggregate(outs, src[into], dst[into] - start, strength[into], n)
            banks = {k: v[start:end] for k, v in self.banks.items() if k != "strength"}
            o, aux_k, g, err = self.forward_level(banks, x)
            outs.append(o)
            aux.append(aux_k)
            gates.append(g.mean(dim=(1, 2)))
            errs.append(err.detach().mean(dim=(1, 2)))
            readout = readout + torch.einsum("n,nbtd->btd", banks["readout"], o)
        self.aux_loss = torch.stack(aux).sum()
        self.gate_activity = torch.cat(gates)
        self.stats = {"gate_mean": self.gate_activity.detach(), "surprise": torch.cat(errs)}
        return readout

    def _aggregate(self, outs: list[Tensor], src: Tensor, dst: Tensor, s: Tensor, n: int) -> Tensor:
        """``x_c = Σ_a s_ac o_a`` as one (n, N_below) strength matrix times the outputs."""
        below = torch.cat(outs)  # (N_below, B, T, D)
        w = s.new_zeros(n, len(below)).index_put((dst, src), s, accumulate=True)
        return (w @ below.flatten(1)).view(n, *below.shape[1:])

    def forward_level(
        self, banks: dict[str, Tensor], x: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """One level of cells on their inputs ``x`` (n, B, T, D).

        Returns ``(o, aux_loss, gate, surprise)``: outputs (n, B, T, D), the local prediction
        loss (), gate and surprise (n, B, T).
        """
        cfg = self.cfg
        u = bank_matmul(rms_norm(x) * banks["norm"][:, None, None], banks["w_read"])
        v = causal_conv(u, banks["conv"]) if cfg.conv_taps else u  # (n, B, T, d)
        h = self._inertial(banks, v)
        err = self._surprise(banks, h, u)  # (n, B, T)
        if cfg.out_gate:
            h = h * F.gelu(bank_matmul(v, banks["w_ogate"]))
        z = bank_matmul(h, banks["w_inert"], add=v)
        g = torch.ones_like(err)
        if cfg.attention:
            if cfg.gate:
                gate = banks["gate"][:, :, None, None]
                g = torch.sigmoid(gate[:, 0] * torch.log(err.detach() + 1e-4) + gate[:, 1])
            z = z + g[..., None] * self._attention(banks, v)
        if cfg.mlp_ratio:
            w1 = banks["mlp_norm"][:, :, None] * banks["w_mlp1"]
            z = bank_matmul(F.gelu(bank_matmul(rms_norm(z), w1)), banks["w_mlp2"], add=z)
        o = bank_matmul(z, banks["w_write"], add=x)
        return o, err.mean(dim=(1, 2)).sum(), g, err

    def _inertial(self, banks: dict[str, Tensor], v: Tensor) -> Tensor:
        """The diagonal recurrence of the core over ``v`` (n, B, T, d)."""
        log_a = F.logsigmoid(banks["decay"])[:, None, None]  # (n, 1, 1, d)
        b = banks["w_in"][:, None, None]
        if self.cfg.recurrence == "lti":
            return linear_recurrence((1 - log_a.exp()) * b * v, log_a[:, 0, 0])
        rate, gate_in = bank_matmul(v, banks["w_select"], add=None).chunk(2, dim=-1)
        d = v.shape[-1]
        bias = banks["b_select"][:, None, None]
        log_at = 2 * torch.sigmoid(rate + bias[..., :d]) * log_a  # (n, B, T, d) ≤ 0
        u = (1 - log_at.exp()) * b * torch.sigmoid(gate_in + bias[..., d:]) * v
        return selective_recurrence(u, log_at)

    @staticmethod
    def _surprise(banks: dict[str, Tensor], h: Tensor, u: Tensor) -> Tensor:
        """Error of predicting the normalised next read from ``h_{t-1}`` (detached both)."""
        target = rms_norm(u.detach())
        pred = bank_matmul(h.detach(), banks["w_pred"])  # pred[t] predicts target[t + 1]
        err = (target[:, :, 1:] - pred[:, :, :-1]).pow(2).mean(-1)
        return torch.cat([target[:, :, :1].pow(2).mean(-1), err], dim=2)  # (n, B, T)

    def _attention(self, banks: dict[str, Tensor], v: Tensor) -> Tensor:
        n, B, T, d = v.shape
        H = self.cfg.n_heads
        qkv = bank_matmul(v, banks["w_qkv"]).view(n * B, T, 3, H, d // H)
        q, k, val = (p.transpose(1, 2) for p in qkv.unbind(2))
        att = F.scaled_dot_product_attention(q, k, val, is_causal=True)
        return bank_matmul(att.transpose(1, 2).reshape(n, B, T, d), banks["w_attn_out"])

    # --------------------------------------------------------------- accounting
    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def flops_per_token(
        self, seq_len: int, gate: Tensor | float | None = None, passes: int = 1
    ) -> float:
        """Dense forward FLOPs per token (the geometric core counted fully open; one pass:
        the prototype has no ACT, ``passes`` is accepted for the trainer's protocol)."""
        cfg = self.cfg
        D, d, m = cfg.d_stream, cfg.d_cell, cfg.mlp_ratio * cfg.d_cell
        cell = 2.0 * (2 * D * d + 2 * d * d + 2 * m * d) + 2 * cfg.conv_taps * d
        if cfg.out_gate:
            cell += 2 * d * d
        if cfg.recurrence == "selective":
            cell += 2 * 2 * d * d + 2 * seq_len / 2 * d  # gates + the (T, T) product
        if cfg.attention:
            cell += 2 * 4 * d * d + 2 * 2 * (seq_len / 2) * d
        n, e = self.tissue.num_nodes, self.tissue.edge_index.shape[1]
        return n * cell + 2 * D * e + 2 * D * cfg.vocab_size

    def snapshot(self) -> object:
        t = self.tissue.clone()
        t.strength = self.banks["strength"].detach().clone()
        return t


def count_params(cfg: WideConfig) -> int:
    """Parameters of the seed network of ``cfg`` (banks, strengths, embedding, head)."""
    t = seed_tissue(cfg.level_sizes, seed=cfg.seed)
    per_cell = sum(math.prod(shape) for shape in bank_shapes(cfg).values())
    D, V = cfg.d_stream, cfg.vocab_size
    return t.num_nodes * per_cell + t.edge_index.shape[1] + 2 * D * V + D


def sized(cfg: WideConfig, target_params: int) -> WideConfig:
    """``cfg`` with the largest ``d_cell`` (a multiple of ``n_heads``) within ``target_params``."""
    best = replace(cfg, d_cell=cfg.n_heads)
    for d in range(cfg.n_heads, 4 * cfg.d_stream, cfg.n_heads):
        trial = replace(cfg, d_cell=d)
        if count_params(trial) > target_params:
            break
        best = trial
    return best
