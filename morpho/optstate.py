"""Optimizer state at growth: what the moments of an edit's entries hold, as a named policy.

    apply_edit(net, edit, opt, policy=StatePolicy("asymmetric", rewarm_steps=20))
    morpho.split(net, cell_id, optimizer=opt, optimizer_state="asymmetric", rewarm_steps=20)

Policies (DESIGN §4; ``[growth] optimizer_state``, recorded in each event):

* ``exact`` — every state tensor carried by the row map (:mod:`morpho.surgery`): the
  engine's default, the one its laws are tested on.
* ``asymmetric`` — old entries keep their carried state; *new entries* start with zero
  moments (Adagrad's ``sum``: its initial value) and re-warm. New entries are, per bank,
  the rows a row map creates — fresh rows and every row that reads an old row an earlier
  row already continues (a split's daughter B and the copies of the mother's edges; a
  cell inserted in series) — and a widened bank's new channels. The parameter's step
  count is kept (torch keeps one per parameter: with zero moments at a late step the bias
  corrections are ~1, and Adam's first update of a new entry is ``(1 − β1)/√(1 − β2)``
  times a sign step, which the re-warm softens). SPARKLING (arXiv 2602.02472) found that
  after a copy split both copying and resetting every moment lock the copies into
  identical updates; this is its remedy.
* ``reset`` — the whole optimizer state is dropped, every parameter's (step counts too):
  the next step is a fresh optimizer's first, exactly what the ``morpho-reset`` bench row
  gets by building a new optimizer, without rebuilding the object.

The re-warm law: the ``j``-th optimizer step after birth (``j = 1 … k``, ``k =
rewarm_steps``) runs at ``lr · j / k`` on the new entries, at ``lr`` on every other. For
SGD (momentum, Nesterov, weight decay), Adam, AdamW, NAdam, RAdam, Adamax, RMSprop,
Adadelta and Adagrad (``lr_decay = 0``) one step's change ``Δ = p₁ − p₀`` is linear in lr
(AdamW's decoupled decay ``−lr·λ·p`` too) and no state depends on lr, so the step at
``lr·m`` equals the step at ``lr`` followed by ``p ← p₀ + m·Δ``: an optimizer step
pre-hook keeps ``p₀`` of the re-warming parameters and a post-hook makes that correction
(:func:`install_rewarm`), entry by entry, so the optimizer is never rebuilt. The
bookkeeping lives in the parameter's optimizer state (``rewarm``: steps left per entry,
carried by later edits like a moment of order 0; ``rewarm_steps``, ``rewarm_left``), so a
checkpoint keeps it. A parameter with no state yet (never stepped) has nothing to keep
and no re-warm.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from morpho.surgery import MOMENT_ORDER, REWARM, ChannelMap, RowMap, widen_rows

POLICIES = ("exact", "asymmetric", "reset")
REWARM_STEPS = "rewarm_steps"  # state key: k of the parameter's latest re-warm
REWARM_LEFT = "rewarm_left"  # state key: steps until no entry of the parameter re-warms
DEFAULT_REWARM = 0  # steps of the asymmetric policy's re-warm: none by default (measured:
# a 20-step re-warm slows the daughters' divergence, BENCHMARKS.md "Do the daughters ...")
HOOK_ATTR = "_morpho_rewarm"  # the optimizer attribute that marks installed hooks


@dataclass(frozen=True)
class StatePolicy:
    """What an edit does to the optimizer state of the entries it touches."""

    name: str = "exact"  # exact | asymmetric | reset (see the module docstring)
    rewarm_steps: int = DEFAULT_REWARM  # asymmetric: new entries' lr ramps over this many
    # steps (0: none)

    def __post_init__(self) -> None:
        check_policy(self.name)
        if self.rewarm_steps < 0:
            raise ValueError(f"rewarm_steps must be >= 0; got {self.rewarm_steps}")


def check_policy(name: str) -> str:
    """``name`` if it is a policy; ``ValueError`` listing the policies otherwise."""
    if name not in POLICIES:
        raise ValueError(
            f"unknown optimizer_state policy {name!r}; expected one of: {', '.join(POLICIES)}"
        )
    return name


def new_rows(rmap: RowMap) -> Tensor:
    """(M,) bool: the rows ``rmap`` creates — fresh rows and each row that reads an old row
    an earlier row of the map already reads (a copy)."""
    src = rmap.src
    m = src.numel()
    idx = torch.arange(m)
    old = src >= 0
    first = torch.full((int(src.max()) + 1 if m else 1,), m, dtype=torch.long)
    first.scatter_reduce_(0, src[old], idx[old], reduce="amin")
    new = ~old
    new[old] = first[src[old]] != idx[old]
    return new


def new_entries(value: Tensor, where: RowMap | ChannelMap) -> Tensor:
    """Bool, shaped like ``value`` (the bank after the edit): its new entries."""
    if isinstance(where, ChannelMap):
        old = torch.zeros(value.shape[0], *[len(ix) for ix in where.index], dtype=torch.bool)
        return widen_rows(old, where, fill=True).to(value.device)
    rows = new_rows(where).to(value.device)
    return rows.view((-1,) + (1,) * (value.dim() - 1)).expand_as(value)


def restart_entries(
    optimizer: torch.optim.Optimizer, p: Tensor, mask: Tensor, rewarm_steps: int
) -> None:
    """The ``asymmetric`` policy on parameter ``p``: its ``mask`` entries get zero moments
    (Adagrad's ``sum``: its initial value) and, with ``rewarm_steps > 0``, a re-warm."""
    state = optimizer.state.get(p)
    if not state or not bool(mask.any()):
        return  # never stepped: every entry takes the optimizer's own first step
    group = next(g for g in optimizer.param_groups if any(q is p for q in g["params"]))
    for key, value in list(state.items()):
        if key in MOMENT_ORDER and key != REWARM and torch.is_tensor(value):
            if value.shape == p.shape:
                fill = group.get("initial_accumulator_value", 0.0) if key == "sum" else 0.0
                state[key] = value.masked_fill(mask, fill)
    if rewarm_steps > 0:
        left = state.get(REWARM, torch.zeros_like(p))
        state[REWARM] = left.masked_fill(mask, float(rewarm_steps))
        state[REWARM_STEPS] = rewarm_steps
        state[REWARM_LEFT] = max(int(state.get(REWARM_LEFT, 0)), rewarm_steps)
        install_rewarm(optimizer)


def reset_state(optimizer: torch.optim.Optimizer) -> None:
    """The ``reset`` policy: drop every parameter's state (a fresh optimizer's)."""
    optimizer.state.clear()


class _Rewarm:
    """The step hooks of the re-warm law (module docstring)."""

    def __init__(self) -> None:
        self.before: dict[int, Tensor] = {}  # id(param) → its value before the step

    def pre(self, optimizer: torch.optim.Optimizer, *_: object) -> None:
        self.before = {
            id(p): p.detach().clone() for p, st in optimizer.state.items() if REWARM in st
        }

    @torch.no_grad()
    def post(self, optimizer: torch.optim.Optimizer, *_: object) -> None:
        for p, state in list(optimizer.state.items()):
            p0 = self.before.get(id(p))
            if REWARM not in state or p0 is None:
                continue
            left, k = state[REWARM], state[REWARM_STEPS]
            m = 1.0 - (left.clamp(min=1.0) - 1.0) / k  # j/k on the j-th step, 1 when done
            p.copy_(torch.where(left > 0, p0 + m * (p - p0), p))
            state[REWARM] = (left - 1.0).clamp(min=0.0)
            state[REWARM_LEFT] = int(state[REWARM_LEFT]) - 1
            if state[REWARM_LEFT] <= 0:
                for key in (REWARM, REWARM_STEPS, REWARM_LEFT):
                    del state[key]
        self.before = {}


def install_rewarm(optimizer: torch.optim.Optimizer) -> None:
    """Register the re-warm's step hooks on ``optimizer`` once (idempotent); they do
    nothing while no parameter re-warms."""
    if getattr(optimizer, HOOK_ATTR, None) is not None:
        return
    hooks = _Rewarm()
    optimizer.register_step_pre_hook(hooks.pre)
    optimizer.register_step_post_hook(hooks.post)
    setattr(optimizer, HOOK_ATTR, hooks)
