"""Cell types: the banks a cell declares and the batched forward of one level of cells.

A cell is a *row* of every bank of its type; all cells of a level run as one batched
matmul (``bmm`` over the leading cell dimension, :func:`bank_matmul`). The built-in types are
the thermodynamic cell (:mod:`morpho.cells_thermo`, ``"thermo"``) and the wide-stream cell
(:mod:`morpho.cells_wide`, ``"wide"``).

**Cell types** subclass :class:`CellType`: they declare their banks (:class:`Bank`) and
settings (``Config``) and are added with :func:`register_cell_type` (or the
``morpho.cell_types`` entry-point group); ``network.cell_type`` picks one.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from morpho.coerce import from_dict, reject_unknown
from morpho.registry import Registry

if TYPE_CHECKING:
    from morpho.network import NetworkConfig


@dataclass(frozen=True)
class LevelOutput:
    """What one level of cells returns.

    Shapes:
        y: (n, B, T, d) cell outputs; aux_loss: () summed local prediction loss;
        gate: (n, B, T) gate activity; surprise, gate_mean: (n,) detached statistics;
        gate_entropy: (n,) detached mean binary entropy of the gate per token (nats), or None.
    """

    y: Tensor
    aux_loss: Tensor
    gate: Tensor
    surprise: Tensor
    gate_mean: Tensor
    gate_entropy: Tensor | None = None


BIRTHS_IN_SERIES = ("copy", "zero", "fresh")
BIRTHS_BY_SPLIT = ("copy", "share")
NEW_CHANNEL_FILLS = ("fresh", "zero")


@dataclass(frozen=True)
class ChannelAxis:
    """An axis of a bank's row that grows with the cell's channel count ``d``.

    The axis holds ``blocks`` equal blocks that each grow with ``d`` (``w_select`` (d, 2d):
    axis 1 is two blocks, rate and input gate; ``w_qkv`` (d, 3d): three, q, k and v; an
    MLP's hidden axis (d, r·d): one). Widening (:func:`morpho.edits.widen_edit`) keeps each
    block's old entries first and appends the new ones at the block's end, so a block of
    attention heads gains whole heads. An entry in a new position of this axis gets ``new``:
    ``"fresh"`` (from the bank's ``init`` at the new width) or ``"zero"`` (and zero optimizer
    moments in either case); an entry new on a ``"zero"`` axis is zero.

    Args:
        axis: row axis (0: the first axis after the cell dimension).
        blocks: equal blocks the axis is made of.
        new: ``"fresh"`` or ``"zero"``.
    """

    axis: int
    blocks: int = 1
    new: str = "fresh"

    def __post_init__(self) -> None:
        if self.new not in NEW_CHANNEL_FILLS:
            raise ValueError(
                f"channel axis fill {self.new!r}; expected one of: {', '.join(NEW_CHANNEL_FILLS)}"
            )
        if self.axis < 0 or self.blocks < 1:
            raise ValueError(f"channel axis needs axis >= 0, blocks >= 1; got {self}")


@dataclass(frozen=True)
class Bank:
    """One bank a cell type declares: the shape of a row, fresh rows, and how rows are born.

    Args:
        shape: per-row shape (the leading cell dimension left out).
        init: ``(n, generator) -> (n, *shape)`` fresh rows for ``n`` cells.
        series: the row of a cell born in series (:func:`morpho.edits.insert_edit`):
            ``"copy"`` the parent's row; ``"zero"`` (with zero optimizer moments) — an
            output projection, so that the newborn, which carries its raw input on the
            residual, is the identity at birth; or ``"fresh"``, a new row from ``init``
            (with a fresh optimizer state).
        split: the rows of the two daughters of a split: ``"copy"`` the mother's row (plus
            the split's noise), or ``"share"`` it, half each with no noise — an outgoing
            weight, so that the sum downstream is kept.
        channels: the row axes that grow with ``d`` when the network widens, and what their
            new entries get (:class:`ChannelAxis`); a bank whose shape changes with ``d``
            on an axis not named here cannot be widened.
        widen_power: widening ``d → d'`` multiplies the old entries of a bank that grows
            by ``(d'/d) ** p`` (0: kept): the gain after a norm whose channel count grows.
    """

    shape: tuple[int, ...]
    init: Callable[[int, torch.Generator], Tensor]
    series: str = "copy"
    split: str = "copy"
    channels: tuple[ChannelAxis, ...] = ()
    widen_power: float = 0.0

    def __post_init__(self) -> None:
        if self.series not in BIRTHS_IN_SERIES:
            raise ValueError(
                f"bank series birth {self.series!r}; expected one of: {', '.join(BIRTHS_IN_SERIES)}"
            )
        if self.split not in BIRTHS_BY_SPLIT:
            raise ValueError(
                f"bank split birth {self.split!r}; expected one of: {', '.join(BIRTHS_BY_SPLIT)}"
            )


@dataclass(frozen=True)
class CellConfig:
    """Settings of a cell type (none): each type names its own frozen dataclass."""


class CellType:
    """Template for a cell type: declares its banks and settings, computes a level at once.

    A type overrides :meth:`banks` (each :class:`Bank`: row shape, fresh rows, and how a
    cell born in series or by a split gets its row — edits ask nothing else),
    :meth:`forward_level` and :meth:`flops_per_token`, and names its settings in ``Config``
    (a frozen dataclass). A network builds it with :meth:`from_network`: each ``Config``
    field is read from ``[network.cell_options]`` or, for fields that are ``[network]`` keys
    themselves (the thermodynamic cell's ``n_heads``, ``mlp_ratio``, ``gate_skip``,
    ``gate_skip_backward``), from ``[network]``. Register it with
    :func:`register_cell_type`; docs/cell_types.md walks through one.
    """

    Config: type = CellConfig

    def __init__(self, cfg: Any = None, **settings: Any) -> None:
        """``cfg``: the type's ``Config`` (default: its defaults); ``settings`` replace fields."""
        base = self.Config() if cfg is None else cfg
        self.cfg = dataclasses.replace(base, **settings)

    @classmethod
    def config_from(cls, network: NetworkConfig) -> Any:
        """This type's ``Config`` from a network config.

        Raises:
            ValueError: ``[network.cell_options]`` holds a key that is not a field of
                ``Config`` or that belongs in ``[network]``, or a value of the wrong type.
        """
        names = [f.name for f in dataclasses.fields(cls.Config)]
        shared = {f.name for f in dataclasses.fields(network)} - {"cell_options"}
        own = [n for n in names if n not in shared]
        for key in network.cell_options:
            if key in shared:
                raise ValueError(f"network.cell_options.{key}: set it as network.{key}")
        note = f" for cell type {network.cell_type!r}"
        reject_unknown(network.cell_options, own, "network.cell_options.", note)
        cfg = from_dict(cls.Config, dict(network.cell_options), "network.cell_options.")
        return dataclasses.replace(cfg, **{n: getattr(network, n) for n in names if n in shared})

    @classmethod
    def from_network(cls, network: NetworkConfig) -> CellType:
        """The cell type as a network config configures it."""
        return cls(cls.config_from(network))

    def banks(self, d: int) -> dict[str, Bank]:
        """Every bank of a cell with ``d`` channels, by name, in parameter order."""
        raise NotImplementedError

    def widened(self, network: NetworkConfig, d_cell: int) -> NetworkConfig:
        """The network config once every cell has ``d_cell`` channels, with every setting
        that keeps the widened cell's function (:func:`morpho.edits.widen_edit`); the banks'
        ``channels`` say where the new entries go. By default a type cannot widen.

        Raises:
            ValueError: the type cannot widen (to ``d_cell``).
        """
        able = [n for n in CELL_TYPES.names() if CELL_TYPES.get(n).widened is not CellType.widened]
        raise ValueError(
            f"cell type {network.cell_type!r} cannot widen; cell types that can: "
            f"{', '.join(able) or '(none)'}"
        )

    @contextlib.contextmanager
    def exact_backward(self) -> Iterator[None]:
        """A context in which the backward is the forward's exact derivative (monitors that
        differentiate the forward use it; a type with an approximate backward switches it
        off here). The default backward is exact: nothing to do."""
        yield

    def init_rows(self, n: int, d: int, gen: torch.Generator) -> dict[str, Tensor]:
        """Fresh parameters for ``n`` cells, one tensor per declared bank (in order).

        Raises:
            ValueError: a bank's ``init`` returns rows of another shape than declared.
        """
        rows = {}
        for name, bank in self.banks(d).items():
            rows[name] = bank.init(n, gen)
            if tuple(rows[name].shape) != (n, *bank.shape):
                raise ValueError(
                    f"bank {name!r} of {type(self).__name__} initialises rows of shape "
                    f"{tuple(rows[name].shape)}; declared ({n}, {', '.join(map(str, bank.shape))})"
                )
        return rows

    def forward_level(
        self,
        banks: dict[str, Tensor],
        x: Tensor,
        demand: Tensor | None,
        clock: int = 1,
        raw_skip: Tensor | None = None,
    ) -> LevelOutput:
        """Run ``n`` cells on their aggregated inputs ``x`` (n, B, T, d).

        ``clock``: the level's period in tokens (its state updates every ``clock``-th token);
        ``raw_skip``: (n,) bool, cells whose residual carries the raw input.
        """
        raise NotImplementedError

    def flops_per_token(self, d: int, seq_len: int, clock: int = 1) -> tuple[float, float]:
        """Forward FLOPs per token of one cell: ``(always paid, paid where the gate is open)``."""
        raise NotImplementedError


CELL_TYPES: Registry[type[CellType]] = Registry("cell type", entry_point_group="morpho.cell_types")


Init = Callable[[int, torch.Generator], Tensor]  # (n, generator) -> (n, *shape) fresh rows


def normal_rows(shape: tuple[int, ...], std: float) -> Init:
    """A bank initialiser: rows drawn from N(0, std²)."""
    return lambda n, gen: torch.randn(n, *shape, generator=gen) * std


def const_rows(shape: tuple[int, ...], value: float) -> Init:
    """A bank initialiser: rows filled with ``value``."""
    return lambda n, gen: torch.full((n, *shape), value)


def register_cell_type(name: str, cell_type: type[CellType]) -> None:
    """Add a cell type class under ``name`` (``network.cell_type`` selects it); a network
    builds it with ``cell_type.from_network(network_config)``. Packages can add theirs
    without an import through the ``morpho.cell_types`` entry-point group."""
    CELL_TYPES.register(name, cell_type)


def bank_matmul(x: Tensor, w: Tensor, add: Tensor | None = None) -> Tensor:
    """Each cell's rows times its own matrix: ``add + x @ w`` batched over the cell dim.

    One ``bmm`` (``baddbmm`` with ``add``) on flattened views; ``einsum`` would do the same
    through several permutes and reshapes, each an autograd node in the backward.

    Shapes:
        x: (n, ..., d); w: (n, d, e); add: (n, ..., e) or None; returns (n, ..., e).
    """
    n, e = x.shape[0], w.shape[-1]
    x3 = x.reshape(n, -1, x.shape[-1])
    out = torch.bmm(x3, w) if add is None else torch.baddbmm(add.reshape(n, -1, e), x3, w)
    return out.view(*x.shape[:-1], e)


def rms_norm(x: Tensor, eps: float = 1e-6, count: int | None = None) -> Tensor:
    """``x / sqrt(mean(x²) + eps)`` over the last dim; with ``count``, the mean is the sum
    over ``count`` (a widened cell's norms average over its width before widening, so that
    new channels, zero at birth, leave them unchanged).

    (Not through ``vector_norm``: faster, but its second derivative is NaN on an all-zero
    row — the input of a cell no edge reaches — which the criticality regulariser takes.)"""
    return x * torch.rsqrt(channel_mean(x.pow(2), count, keepdim=True) + eps)


def channel_mean(x: Tensor, count: int | None = None, keepdim: bool = False) -> Tensor:
    """Mean over the last dim, or its sum over ``count`` (see :func:`rms_norm`)."""
    if count is None:
        return x.mean(-1, keepdim=keepdim)
    return x.sum(-1, keepdim=keepdim) / count


def binary_entropy(p: Tensor, eps: float = 1e-6) -> Tensor:
    """Entropy in nats of a Bernoulli(``p``), elementwise; 0 at p ∈ {0, 1}, log 2 at 1/2."""
    p = p.clamp(eps, 1 - eps)
    return -(p * p.log() + (1 - p) * (1 - p).log())
