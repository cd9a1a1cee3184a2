"""Static baselines sized by parameters: a char-level Transformer and a GRU; an image MLP.

All follow the trainer's model protocol (``morpho.trainer.Model``): ``forward(tokens)`` →
logits, ``n_params()``, ``flops_per_token(seq_len)``; so they train through the very same
:class:`~morpho.trainer.Trainer` loop, optimizer and batches as a morpho network.

    model = build_baseline("transformer", vocab_size=96, target_params=130_000, seed=0)
    logits = model(tokens)                       # (B, T) long -> (B, T, V)
    mlp = build_image_mlp(64, 10, target_params=30_000)   # digits: (B, 8, 8) -> (B, 1, 10)

:func:`build_baseline` fixes the depth and searches the width (on the ``meta`` device, so
the search allocates nothing) to land on ``target_params``; the Transformer then fills the
remainder with its MLP width, so it lands within a fraction of a percent.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from morpho.callbacks import StepResult
from morpho.trainer import Callback, Trainer


def _check_tokens(tokens: Tensor) -> None:
    if tokens.dim() != 2 or tokens.dtype != torch.long:
        raise ValueError(
            f"tokens must be a (B, T) long tensor; got {tuple(tokens.shape)} {tokens.dtype}"
        )


class _Baseline(nn.Module):
    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def flops_per_token(self, seq_len: int) -> float:
        raise NotImplementedError


# ------------------------------------------------------------------------ Transformer
@dataclass(frozen=True)
class TransformerConfig:
    """A pre-norm causal Transformer with rotary positions (no position parameters)."""

    vocab_size: int = 256  # characters in the vocabulary (set by the task)
    d_model: int = 128  # residual width; a multiple of 2 · n_heads (rotary pairs per head)
    n_layer: int = 4  # blocks
    n_heads: int = 4  # attention heads
    d_ff: int = 512  # hidden width of each block's MLP
    rope_base: float = 10000.0  # rotary frequency base (RoFormer, Su et al. 2021)

    def __post_init__(self) -> None:
        if self.d_model < 1 or self.d_model % (2 * self.n_heads):
            raise ValueError(
                f"d_model must be a positive multiple of 2·n_heads={2 * self.n_heads}"
                f"; got {self.d_model}"
            )
        if min(self.vocab_size - 1, self.n_layer, self.d_ff) < 1:
            raise ValueError(f"need vocab_size >= 2, n_layer >= 1, d_ff >= 1; got {self}")


def rotary(x: Tensor, base: float) -> Tensor:
    """Rotate channel pairs of ``x`` by position-dependent angles (RoPE).

    Shapes:
        x: (B, H, T, d_head) with even d_head; returns the same shape.
    """
    T, d_head = x.shape[-2], x.shape[-1]
    inv_freq = base ** (-torch.arange(0, d_head, 2, device=x.device, dtype=x.dtype) / d_head)
    angle = torch.arange(T, device=x.device, dtype=x.dtype)[:, None] * inv_freq  # (T, d_head/2)
    cos, sin = angle.cos(), angle.sin()
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)


class Block(nn.Module):
    """``x + attn(ln(x))``, then ``x + mlp(ln(x))`` (pre-norm, as in GPT-2)."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.fc = nn.Linear(cfg.d_model, cfg.d_ff)
        self.out = nn.Linear(cfg.d_ff, cfg.d_model)

    def forward(self, x: Tensor) -> Tensor:
        B, T, d = x.shape
        H = self.cfg.n_heads
        q, k, v = self.qkv(self.ln1(x)).view(B, T, 3, H, d // H).permute(2, 0, 3, 1, 4)
        q, k = rotary(q, self.cfg.rope_base), rotary(k, self.cfg.rope_base)  # (B, H, T, d/H)
        att = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(att.transpose(1, 2).reshape(B, T, d))
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class CharTransformer(_Baseline):
    """Token embedding → ``n_layer`` pre-norm blocks → LayerNorm → linear head."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size)
        self.apply(self._init)
        for block in cast(
            list[Block], list(self.blocks)
        ):  # GPT-2: residual projections scaled by 1/sqrt(2 · depth)
            for w in (block.proj.weight, block.out.weight):
                w.data /= math.sqrt(2 * cfg.n_layer)

    @staticmethod
    def _init(m: nn.Module) -> None:
        """Weights N(0, 1/fan_in), embeddings N(0, 1), biases 0.

        GPT-2's fixed std 0.02 is ≈ 0.55/sqrt(fan_in) at width 768 but 0.16/sqrt(fan_in) at
        width 64: there it starts every block near zero and, on the small preset, costs
        0.29 bpc (2.463 → 2.170 at lr 3e-3, seed 0; BENCHMARKS.md).
        """
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=m.in_features**-0.5)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=1.0)

    def forward(self, tokens: Tensor) -> Tensor:
        """Shapes: tokens (B, T) long → logits (B, T, V)."""
        _check_tokens(tokens)
        x = self.embed(tokens)  # (B, T, d)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))

    def flops_per_token(self, seq_len: int) -> float:
        """Forward FLOPs per token: 2 per weight of every matmul, plus causal attention
        (scores and weighted sum over on average ``seq_len / 2`` earlier tokens)."""
        c = self.cfg
        matmul = c.n_layer * (4 * c.d_model**2 + 2 * c.d_model * c.d_ff) + c.d_model * c.vocab_size
        attention = c.n_layer * 2 * 2 * (seq_len / 2) * c.d_model
        return 2 * matmul + attention


def stack_blocks(model: CharTransformer, optimizer: torch.optim.Optimizer) -> None:
    """G_stack (Du et al. 2024): blocks ``[b_1 … b_L]`` become ``[b_1 … b_L, b_1 … b_L]``.

    Each copy starts with its original's weights and joins its original's param group
    with a clone of its AdamW state (moments and step count). Not function-preserving —
    every block's update now applies twice — but close enough to keep training on: the
    paper's recipe (the bench logs the batch loss before and after).
    """
    depth = model.cfg.n_layer
    originals = [list(block.parameters()) for block in model.blocks]
    model.blocks.extend(copy.deepcopy(block) for block in list(model.blocks))
    model.cfg = replace(model.cfg, n_layer=2 * depth)
    group_of = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    for block, params in zip(list(model.blocks)[depth:], originals, strict=True):
        for twin, p in zip(block.parameters(), params, strict=True):
            group_of[id(p)]["params"].append(twin)
            optimizer.state[twin] = {k: v.clone() for k, v in optimizer.state.get(p, {}).items()}


class StackAt(Callback):
    """Trainer callback: :func:`stack_blocks` once, at the end of step ``step``; the run's
    ``events.jsonl`` gets a ``stack`` event with the batch loss before and after."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, trainer: Trainer, step: int, result: StepResult) -> None:
        if step != self.step:
            return
        before = _batch_loss(trainer, result.batch)
        stack_blocks(trainer.net, trainer.optimizer)
        if trainer.run is not None:
            trainer.run.log_event(
                {
                    "step": step,
                    "kind": "stack",
                    "n_layer": trainer.net.cfg.n_layer,
                    "params": trainer.net.n_params(),
                    "loss_before": before,
                    "loss_after": _batch_loss(trainer, result.batch),
                }
            )


@torch.no_grad()
def _batch_loss(trainer: Trainer, batch: tuple[Tensor, Tensor]) -> float:
    """A batch's loss, a diagnostic read in eval mode (like validation: no training
    compute, so a :class:`~morpho.flops.FlopCounter` does not charge it)."""
    x, y = batch
    trainer.net.eval()
    try:
        return float(F.cross_entropy(trainer.net(x).flatten(0, 1), y.flatten()))
    finally:
        trainer.net.train()


# -------------------------------------------------------------------------------- GRU
@dataclass(frozen=True)
class GRUConfig:
    """A stacked GRU language model (embedding width = hidden width)."""

    vocab_size: int = 256  # characters in the vocabulary (set by the task)
    d_hidden: int = 256  # hidden (and embedding) width
    n_layer: int = 2  # stacked GRU layers

    def __post_init__(self) -> None:
        if min(self.vocab_size - 1, self.d_hidden, self.n_layer) < 1:
            raise ValueError(f"need vocab_size >= 2, d_hidden >= 1, n_layer >= 1; got {self}")


class CharGRU(_Baseline):
    """Token embedding → ``n_layer`` GRU layers → linear head."""

    def __init__(self, cfg: GRUConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_hidden)
        self.gru = nn.GRU(cfg.d_hidden, cfg.d_hidden, num_layers=cfg.n_layer, batch_first=True)
        self.head = nn.Linear(cfg.d_hidden, cfg.vocab_size)

    def forward(self, tokens: Tensor) -> Tensor:
        """Shapes: tokens (B, T) long → logits (B, T, V)."""
        _check_tokens(tokens)
        h, _ = self.gru(self.embed(tokens))  # (B, T, d)
        return self.head(h)

    def flops_per_token(self, seq_len: int) -> float:
        """Forward FLOPs per token: three gates of input and recurrent matmuls per layer."""
        c = self.cfg
        return 2 * (c.n_layer * 3 * 2 * c.d_hidden**2 + c.d_hidden * c.vocab_size)


# ------------------------------------------------------------------------ sizing
def _transformer(
    vocab_size: int, target: int, n_layer: int = 4, n_heads: int = 4, **kw: Any
) -> TransformerConfig:
    """Widest ``d_model`` (multiple of 2·n_heads) whose 4× MLP fits, then the MLP width
    that fills the rest of ``target``."""
    base = TransformerConfig(vocab_size=vocab_size, n_layer=n_layer, n_heads=n_heads, **kw)
    step = 2 * n_heads
    k = _largest(lambda k: count_params(replace(base, d_model=k * step, d_ff=4 * k * step)), target)
    cfg = replace(base, d_model=k * step, d_ff=4 * k * step)
    per_unit = count_params(replace(cfg, d_ff=cfg.d_ff + 1)) - count_params(cfg)
    d_ff = cfg.d_ff + round((target - count_params(cfg)) / per_unit)
    return replace(cfg, d_ff=max(1, d_ff))


def _gru(vocab_size: int, target: int, n_layer: int = 2, **kw: Any) -> GRUConfig:
    base = GRUConfig(vocab_size=vocab_size, n_layer=n_layer, **kw)
    h = _largest(lambda h: count_params(replace(base, d_hidden=h)), target)
    lo, hi = replace(base, d_hidden=h), replace(base, d_hidden=h + 1)
    return min(lo, hi, key=lambda c: abs(count_params(c) - target))


MODELS: dict[type, type[_Baseline]] = {TransformerConfig: CharTransformer, GRUConfig: CharGRU}
SIZERS: dict[str, Callable[..., Any]] = {"transformer": _transformer, "gru": _gru}
BASELINES = tuple(SIZERS)


def count_params(cfg: TransformerConfig | GRUConfig) -> int:
    """Parameters of the model ``cfg`` describes, built on the meta device (no memory)."""
    with torch.device("meta"):
        return MODELS[type(cfg)](cfg).n_params()


def _largest(params_of: Callable[[int], int], target: int) -> int:
    """Largest k >= 1 with ``params_of(k) <= target`` (1 if none); params grow with k."""
    lo, hi = 1, 2
    while params_of(hi) <= target:
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if params_of(mid) <= target else (lo, mid)
    return lo


def baseline_config(
    name: str, vocab_size: int, target_params: int, **kw: Any
) -> TransformerConfig | GRUConfig:
    """The config of baseline ``name`` sized to ``target_params`` (depth and heads in ``kw``)."""
    if name not in SIZERS:
        raise ValueError(f"unknown baseline {name!r}; expected one of: {', '.join(BASELINES)}")
    if target_params < 1:
        raise ValueError(f"target_params must be >= 1; got {target_params}")
    return SIZERS[name](vocab_size, target_params, **kw)


def build_stack_peer(vocab_size: int, target_params: int, seed: int = 0) -> CharTransformer:
    """The ``transformer`` baseline's config at half its depth, to be doubled by
    :func:`stack_blocks` (:class:`StackAt`) into the full model's shape."""
    cfg = baseline_config("transformer", vocab_size, target_params)
    assert isinstance(cfg, TransformerConfig)
    if cfg.n_layer % 2:
        raise ValueError(f"stacking doubles the depth: n_layer must be even; got {cfg.n_layer}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return CharTransformer(replace(cfg, n_layer=cfg.n_layer // 2))


def build_baseline(
    name: str, vocab_size: int, target_params: int, seed: int = 0, **kw: Any
) -> _Baseline:
    """Baseline ``name`` (``transformer`` | ``gru``) with about ``target_params`` parameters,
    initialised from ``seed``."""
    cfg = baseline_config(name, vocab_size, target_params, **kw)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return MODELS[type(cfg)](cfg)


# ------------------------------------------------------------------ image classifiers
@dataclass(frozen=True)
class ImageMLPConfig:
    """One hidden layer on the flattened image (the static peer of the growing-networks
    literature on digits and MNIST: TINY / GroMo, GradMax)."""

    in_features: int = 64  # pixels of an image (tokens × features per token)
    n_classes: int = 10  # classes
    hidden: int = 64  # hidden units

    def __post_init__(self) -> None:
        if min(self.in_features, self.n_classes - 1, self.hidden) < 1:
            raise ValueError(f"need in_features >= 1, n_classes >= 2, hidden >= 1; got {self}")


class ImageMLP(_Baseline):
    """Flatten → Linear → SELU → Linear, reading a classification task's (B, T, k) inputs."""

    def __init__(self, cfg: ImageMLPConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.fc = nn.Linear(cfg.in_features, cfg.hidden)
        self.out = nn.Linear(cfg.hidden, cfg.n_classes)

    def forward(self, x: Tensor) -> Tensor:
        """Shapes: x (B, T, k) float → logits (B, 1, C)."""
        if x.dim() != 3 or x.shape[1] * x.shape[2] != self.cfg.in_features:
            raise ValueError(
                f"inputs must be (B, T, k) with T·k = {self.cfg.in_features}; got {tuple(x.shape)}"
            )
        return self.out(F.selu(self.fc(x.flatten(1))))[:, None]

    def flops_per_token(self, seq_len: int) -> float:
        """Forward FLOPs of one image (2 per weight), spread over its ``seq_len`` tokens."""
        c = self.cfg
        return 2 * (c.in_features * c.hidden + c.hidden * c.n_classes) / seq_len


def mlp_params(in_features: int, n_classes: int, hidden: int) -> int:
    """Parameters of a one-hidden-layer MLP (weights and biases)."""
    return (in_features + 1) * hidden + (hidden + 1) * n_classes


def image_mlp_config(in_features: int, n_classes: int, target_params: int) -> ImageMLPConfig:
    """The hidden width whose parameter count is nearest ``target_params`` (at least 1)."""
    if target_params < 1:
        raise ValueError(f"target_params must be >= 1; got {target_params}")
    hidden = max(1, round((target_params - n_classes) / (in_features + 1 + n_classes)))
    return ImageMLPConfig(in_features, n_classes, hidden)


def build_image_mlp(
    in_features: int, n_classes: int, target_params: int, seed: int = 0
) -> ImageMLP:
    """:class:`ImageMLP` with about ``target_params`` parameters, initialised from ``seed``."""
    cfg = image_mlp_config(in_features, n_classes, target_params)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ImageMLP(cfg)
