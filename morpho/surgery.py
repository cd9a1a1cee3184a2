"""Optimizer surgery: carry every optimizer state tensor across a change of parameter rows.

A topology edit replaces a bank ``p`` (M_old, ...) by ``p'[i] = scale[i] · p[src[i]]`` (or a
fresh row where ``src[i] = -1``). Each state tensor shaped like ``p`` is remapped with the
same row map, scaled by ``scale ** order`` where ``order`` is the state's moment order:

=================  =====  ==========================================
state key          order  optimizers
=================  =====  ==========================================
momentum_buffer    1      SGD (momentum), RMSprop (momentum)
exp_avg            1      Adam, AdamW, NAdam, RAdam, Adamax
grad_avg           1      RMSprop (centered)
exp_inf            1      Adamax (an infinity norm scales like |g|)
exp_avg_sq         2      Adam, AdamW, NAdam, RAdam
max_exp_avg_sq     2      Adam / AdamW with amsgrad
square_avg         2      RMSprop, Adadelta
acc_delta          2      Adadelta
sum                2      Adagrad
rewarm             0      any (the re-warm's steps left, :mod:`morpho.optstate`)
=================  =====  ==========================================

Fresh rows get 0 in every state, except Adagrad's ``sum``, which gets the group's
``initial_accumulator_value`` (what a fresh Adagrad would hold). Zero moments for new rows
follow RigL (Evci et al. 2020). Scalar states (``step``, ``mu_product``) are kept: the rows
continue on the optimizer's clock, and the optimizer object is never rebuilt.
Each remapped bank becomes a new ``nn.Parameter`` that takes the old one's place in its
param group: a tensor whose shape changed cannot keep its autograd identity while an old
graph still references it.

Widening (a :class:`ChannelMap`: the rows keep their cells, each row grows) carries state
the same way: every old entry keeps its value in every state; new entries get 0
(Adagrad's ``sum``: ``initial_accumulator_value``); ``step`` is kept. A bank whose old
entries are rescaled by ``s`` (a norm's gain when the norm's channel count grows) has a
gradient scaled by ``1/s``: its moments are scaled like the gradient, ``s ** -order``, so
that the running statistics stay those of the gradient the bank now gets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor

REWARM = "rewarm"  # per-entry steps left of a learning-rate re-warm (morpho.optstate)
MOMENT_ORDER: dict[str, int] = {
    "momentum_buffer": 1,
    "exp_avg": 1,
    "grad_avg": 1,
    "exp_inf": 1,
    "exp_avg_sq": 2,
    "max_exp_avg_sq": 2,
    "square_avg": 2,
    "acc_delta": 2,
    "sum": 2,
    REWARM: 0,
}


@dataclass(frozen=True)
class RowMap:
    """``new_row[i] ← scale[i] · old_row[src[i]] (+ noise) (+ shift[i])``, or ``fill[i]``
    where ``src[i] < 0``.

    Shapes:
        src: (M,) long; scale, noise: (M,) float; fill: (M,) float, one value per row, or
        (M, *row) whole rows (a fresh initialisation). ``noise`` is a relative standard
        deviation: the row gets ``noise · rms(row) · N(0, 1)`` added (weights only);
        ``shift`` (M, *row) or None: a given offset added to each row (weights only: the
        ``±δ`` of a split's daughters).
    """

    src: Tensor
    scale: Tensor
    fill: Tensor
    noise: Tensor
    shift: Tensor | None = None  # (M, *row) added to the new rows' values (weights only)

    @staticmethod
    def build(
        src: Tensor,
        scale: Tensor | None = None,
        fill: Tensor | None = None,
        noise: Tensor | None = None,
    ) -> RowMap:
        m = src.numel()
        zeros = torch.zeros(m)
        return RowMap(
            src.long(),
            torch.ones(m) if scale is None else scale.float(),
            zeros if fill is None else fill.float(),
            zeros if noise is None else noise.float(),
        )

    @staticmethod
    def identity(n: int) -> RowMap:
        return RowMap.build(torch.arange(n))

    def __len__(self) -> int:
        return int(self.src.numel())

    def is_identity(self, n_rows: int) -> bool:
        """True if the map keeps all ``n_rows`` rows as they are (same order, scale 1, no noise)."""
        return (
            len(self) == n_rows
            and not self.scaled_rows.numel()
            and not self.noisy_rows.numel()
            and self.shift is None
            and torch.equal(self.src, torch.arange(n_rows))
        )

    # Index tensors derived once per map: an edit applies one map to a dozen banks, each
    # with its gradient and optimizer moments.
    @cached_property
    def gather(self) -> Tensor:
        """(M,) old row read by each new row (0 for fresh rows, overwritten by the fill)."""
        return self.src.clamp(min=0)

    @cached_property
    def fresh_rows(self) -> Tensor:
        return (self.src < 0).nonzero().flatten()

    @cached_property
    def scaled_rows(self) -> Tensor:
        """The few rows an edit rescales (a split's outgoing edges and readout weights)."""
        return (self.scale != 1).nonzero().flatten()

    @cached_property
    def noisy_rows(self) -> Tensor:
        return (self.noise > 0).nonzero().flatten()


def remap_rows(x: Tensor, rmap: RowMap, power: int = 1, fill: float | Tensor = 0.0) -> Tensor:
    """Rows of ``x`` rearranged by ``rmap``, scaled by ``scale ** power``; fresh rows ``fill``
    (a scalar, one value per row (M,), or whole rows shaped like the output)."""
    out = x.index_select(0, rmap.gather.to(x.device))
    view = (-1,) + (1,) * (x.dim() - 1)
    rows = rmap.scaled_rows
    if power and rows.numel():
        factor = (rmap.scale[rows].to(x.device, x.dtype) ** power).view(view)
        rows = rows.to(x.device)
        out[rows] = out[rows] * factor
    fresh = rmap.fresh_rows.to(x.device)
    if fresh.numel():
        value = torch.as_tensor(fill, dtype=x.dtype, device=x.device)
        if value.dim() and value.dim() < x.dim():
            value = value.view(view)  # one value per row, broadcast over the row
        out[fresh] = value[fresh] if value.dim() else value
    return out


def remap_parameter(p: Tensor, rmap: RowMap, generator: torch.Generator | None = None) -> Tensor:
    """The new value of a bank: remapped rows, fresh fills, then relative noise."""
    out = remap_rows(p, rmap, power=1, fill=rmap.fill.to(p.device, p.dtype))
    noisy = rmap.noisy_rows
    if noisy.numel():
        rows = out[noisy.to(p.device)]
        rms = rows.pow(2).flatten(1).mean(1).sqrt() if rows.dim() > 1 else rows.abs()
        eps = torch.randn(rows.shape, generator=generator).to(p.device, p.dtype)
        scale = (rmap.noise[noisy].to(p.device, p.dtype) * rms).view((-1,) + (1,) * (p.dim() - 1))
        out[noisy.to(p.device)] = rows + scale * eps
    if rmap.shift is not None:
        out = out + rmap.shift.to(p.device, p.dtype)
    return out


def migrate_optimizer_state(
    optimizer: torch.optim.Optimizer, old: Tensor, new: Tensor, rmap: RowMap
) -> None:
    """Move ``old``'s state to ``new`` and remap every state tensor shaped like ``old``.

    ``new`` takes ``old``'s place in its param group (same position, same hyperparameters);
    the optimizer object, its other groups and its scalar states are untouched.

    Raises:
        ValueError: a state tensor shaped like ``old`` whose key has no known moment order
            (add it to ``MOMENT_ORDER``).
    """
    _carry_state(
        optimizer, old, new, lambda v, order, fill: remap_rows(v, rmap, power=order, fill=fill)
    )


def _carry_state(
    optimizer: torch.optim.Optimizer,
    old: Tensor,
    new: Tensor,
    carry: Callable[[Tensor, int, float], Tensor],
) -> None:
    """Put ``new`` in ``old``'s place and each state tensor shaped like ``old`` through
    ``carry(value, moment order, fill of fresh entries)``."""
    group = next((g for g in optimizer.param_groups if any(q is old for q in g["params"])), None)
    if group is None:
        return
    group["params"] = [new if q is old else q for q in group["params"]]
    state = optimizer.state.pop(old, None)
    if not state:
        return
    for key, value in list(state.items()):
        if not torch.is_tensor(value) or value.dim() == 0 or value.shape != old.shape:
            continue
        if key not in MOMENT_ORDER:
            raise ValueError(
                f"don't know how to migrate optimizer state {key!r} of "
                f"{type(optimizer).__name__}; expected one of: {', '.join(MOMENT_ORDER)} "
                "(register its moment order in morpho.surgery.MOMENT_ORDER)"
            )
        fill = group.get("initial_accumulator_value", 0.0) if key == "sum" else 0.0
        state[key] = carry(value, MOMENT_ORDER[key], fill)
    optimizer.state[new] = state


@dataclass(frozen=True)
class ChannelMap:
    """A widened bank: ``new[:, index[0][i], index[1][j], …] ← old[:, i, j, …]``; every
    other entry (a new channel) ← ``fill``.

    Old entries are multiplied by ``scale`` (1: kept as they are).

    Shapes:
        index: one (old size,) long tensor per row axis, ascending; fill: (M, *new row),
        the new entries' values (what sits at the old positions is overwritten).
    """

    index: tuple[Tensor, ...]
    fill: Tensor
    scale: float = 1.0

    @property
    def shape(self) -> tuple[int, ...]:
        """The new row shape."""
        return tuple(self.fill.shape[1:])


def widen_rows(
    x: Tensor, cmap: ChannelMap, fill: float | Tensor = 0.0, power: float = 0.0
) -> Tensor:
    """``x`` (M, *old row) grown to (M, *new row): old entries in place, times
    ``cmap.scale ** power``; new ones ``fill`` (a scalar, or a tensor of the new shape)."""
    value = torch.as_tensor(fill, dtype=x.dtype, device=x.device)
    out = value.expand(x.shape[0], *cmap.shape).clone()
    where: tuple[slice | Tensor, ...] = (slice(None), *channel_grid(cmap.index, x.device))
    out[where] = x if cmap.scale == 1 or not power else x * cmap.scale**power
    return out


def channel_grid(index: tuple[Tensor, ...], device: torch.device | None = None) -> list[Tensor]:
    """Index tensors (after the row dim) that select the sub-grid ``index`` of a row: one
    (old size,) tensor per axis, each shaped to broadcast along its own axis."""
    r = len(index)
    return [
        ix.to(device).view([-1 if a == k else 1 for a in range(r)]) for k, ix in enumerate(index)
    ]


def widen_optimizer_state(
    optimizer: torch.optim.Optimizer, old: Tensor, new: Tensor, cmap: ChannelMap
) -> None:
    """:func:`migrate_optimizer_state` for a widened bank: old entries keep every state
    value (times ``cmap.scale ** -order``: moments follow the gradient), new entries get
    zero (Adagrad's ``sum``: its initial value).

    Raises:
        ValueError: a state tensor shaped like ``old`` with no known moment order.
    """
    _carry_state(
        optimizer, old, new, lambda v, order, fill: widen_rows(v, cmap, fill, power=-order)
    )
