"""Adaptive computation time: a token passes through the cell graph a variable number of times.

Graves' ACT (Adaptive Computation Time for Recurrent Neural Networks, 2016,
arXiv:1603.08983), applied to the whole tissue as the recurrent cell: pass 1 runs the
tissue on the embedding ``x``, pass ``n ≥ 2`` re-enters it with ``x + state_{n-1}``. After
each pass a halting unit gives every token a halting probability; a token stops once those
sum to ``1 − eps``, and its output is the probability-weighted mean of its states:

    halt = HaltingUnit(d)                                  # a linear map d → 1, in your module
    pond = adaptive_passes(net.forward_tissue, emb, halt, max_passes=4)
    logits = net.head_logits(pond.output)                  # (B, T, V)
    loss = task_loss + tau * pond.ponder_cost              # Graves' time penalty τ·ρ

:func:`ponder_tissue` is the wrapper a :class:`~morpho.network.Network` with
``ponder_max > 1`` runs its tissue in: it returns the passes' forward records merged into
one (``morpho.output.Output``) with the halting record attached.

Compute follows halting *per batch*: the loop stops once every token of the batch has
halted (unless ``early_exit=False``, for sync-free training: then every pass runs and
``Ponder.live`` marks those some token still needed). Tokens that halted earlier still run
through the later passes (the tissue is one batched call over (B, T)) but get weight 0, so
the saving is the passes no token needs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class Ponder:
    """What :func:`adaptive_passes` returns.

    Shapes:
        output: (B, T, d), ``Σ_n p_n state_n``.
        ponder_cost: (), the mean over tokens of ``ρ = N + R`` (differentiable through R).
        passes: (B, T) long, ``N`` — the pass at which each token halted.
        n_passes_run: passes actually computed: ``max(N)`` over the batch with the early
            exit, ``max_passes`` without.
        weights: (n_passes_run, B, T), ``p_n``; each token's column sums to 1.
        live: (n_passes_run,) bool on the device, ``n ≤ max(N)``: some token still running
            at the start of pass n (all True with the early exit).
    """

    output: Tensor
    ponder_cost: Tensor
    passes: Tensor
    n_passes_run: int
    weights: Tensor
    live: Tensor


class HaltingUnit(nn.Module):
    """The halting unit ``state (B, T, d) → logit (B, T)``: one linear map d → 1.

    The weight starts at 0 and the bias at ``bias_init``, so at initialisation every token
    halts with the same ``h = σ(bias_init)``; a positive bias starts with short ponder times
    (with the default 1.0, ``h ≈ 0.73`` and every token halts at pass 2).
    """

    def __init__(self, d: int, bias_init: float = 1.0) -> None:
        super().__init__()
        self.linear = nn.Linear(d, 1)
        nn.init.zeros_(self.linear.weight)
        nn.init.constant_(self.linear.bias, bias_init)

    def forward(self, state: Tensor) -> Tensor:
        return self.linear(state).squeeze(-1)


def _check_args(x: Tensor, max_passes: int, eps: float) -> None:
    if isinstance(max_passes, bool) or not isinstance(max_passes, int) or max_passes < 1:
        raise ValueError(f"max_passes must be an int >= 1; got {max_passes!r}")
    if not 0.0 < eps < 1.0:
        raise ValueError(f"eps must be in (0, 1); got {eps!r}")
    if x.dim() != 3 or not x.is_floating_point():
        raise ValueError(f"x must be a (B, T, d) float tensor; got {tuple(x.shape)} {x.dtype}")


def _check_shape(name: str, got: Tensor, expected: tuple[int, ...], what: str) -> None:
    if tuple(got.shape) != expected:
        raise ValueError(f"{name} must return {what} = {expected}; got {tuple(got.shape)}")


def adaptive_passes(
    step: Callable[[Tensor], Tensor],
    x: Tensor,
    halt_logit: Callable[[Tensor], Tensor],
    max_passes: int,
    eps: float = 0.01,
    early_exit: bool = True,
) -> Ponder:
    """Run ``step`` up to ``max_passes`` times per token, halting each token by ACT.

    After pass ``n`` a token halts with probability ``h_n = σ(halt_logit(state_n))``. It
    stops at ``N = min{n : Σ_{m≤n} h_m ≥ 1 − eps}``, or at ``max_passes`` whatever its
    ``h`` (the budget). Its weights are ``p_n = h_n`` for ``n < N`` and the remainder
    ``R = 1 − Σ_{m<N} h_m`` at ``N`` (``h_N`` only decides *when* to halt). The ponder cost
    is ``ρ = N + R`` as in Graves: ``N`` is a step function, the gradient comes through
    ``R``, and pushes the earlier ``h`` up. A token halting at pass 1 has ``N = 1, R = 1,
    ρ = 2`` — so with ``max_passes = 1``, ``ρ = 2`` and the output is exactly ``step(x)``.

    Causal along T whenever ``step`` is: ``N`` and the weights at position t depend only on
    states at t; only ``n_passes_run`` (how long the loop ran) looks at the whole batch.
    The loop checks ``any token still running`` once per pass (a host sync on GPU); with
    ``early_exit=False`` it always runs ``max_passes`` passes instead (halted tokens weigh 0
    in the later ones: the same output, cost and passes, more compute, no sync; ``live``
    tells which passes some token needed).

    Args:
        step: one pass of the cell graph, (B, T, d) → (B, T, d).
        x: the embedded tokens; pass 1 gets ``x``, pass n ≥ 2 gets ``x + state_{n-1}``.
        halt_logit: the halting unit, state (B, T, d) → logit (B, T).
        max_passes: the most passes any token may take (≥ 1).
        eps: halting threshold slack in (0, 1); with ``h_1 ≥ 1 − eps`` one pass suffices.
        early_exit: stop once every token has halted (reads the device from the host).

    Returns:
        A :class:`Ponder` with the output, ponder cost, passes and weights.

    Shapes:
        x: (B, T, d); output: (B, T, d); passes: (B, T); weights: (n_passes_run, B, T).
    """
    _check_args(x, max_passes, eps)
    B, T, _ = x.shape
    halted_sum = x.new_zeros(B, T)  # Σ h_m over the passes a running token has continued
    running = torch.ones(B, T, dtype=torch.bool, device=x.device)
    passes = torch.zeros(B, T, dtype=torch.long, device=x.device)
    remainder = x.new_zeros(B, T)  # R, filled in when a token halts
    output: Tensor | None = None
    weights: list[Tensor] = []
    live: list[Tensor] = []  # per pass: some token still running when it started
    state: Tensor | None = None
    for n in range(1, max_passes + 1):
        live.append(running.any())
        state = step(x if state is None else x + state)
        _check_shape("step", state, tuple(x.shape), "(B, T, d)")
        h = torch.sigmoid(halt_logit(state))
        _check_shape("halt_logit", h, (B, T), "(B, T)")
        last = n == max_passes  # the budget: a token still running halts here whatever its h
        halts = running if last else running & (halted_sum + h >= 1 - eps)
        going_on = running & ~halts
        r = 1 - halted_sum
        p = torch.where(halts, r, torch.where(going_on, h, 0.0))  # (B, T)
        term = p.unsqueeze(-1) * state  # (B, T, d)
        output = term if output is None else output + term
        remainder = torch.where(halts, r, remainder)
        passes = torch.where(halts, n, passes)
        halted_sum = halted_sum + torch.where(going_on, h, 0.0)
        running = going_on
        weights.append(p)
        if early_exit and not bool(running.any()):  # the host reads the device here
            break
    assert output is not None  # max_passes >= 1: the loop ran at least once
    ponder_cost = (passes.to(x.dtype) + remainder).mean()
    return Ponder(
        output, ponder_cost, passes, len(weights), torch.stack(weights), torch.stack(live)
    )


def ponder_tissue(
    tissue_pass: Callable[[Tensor], Any],
    x: Tensor,
    halt_logit: Callable[[Tensor], Tensor],
    max_passes: int,
    eps: float = 0.01,
    sync_free: bool = False,
) -> Any:
    """Run one tissue pass per ACT pass (:func:`adaptive_passes`) and merge their records.

    ``tissue_pass`` maps (B, T, d) inputs to a frozen forward record (``morpho.output.
    Output``: ``state``, ``aux_loss``, ``gate_activity``, ``stats``, ``captured``). The merged
    record has the ACT output as ``state``, the means over the passes of the auxiliary
    loss, gate activity and statistics (over the passes some token needed: with
    ``sync_free`` every pass runs and ``Ponder.live`` masks the others), one capture per
    pass, and the :class:`Ponder` as ``ponder``.
    """
    records: list[Any] = []

    def one_pass(inp: Tensor) -> Tensor:
        record = tissue_pass(inp)
        records.append(record)
        return record.state

    pond = adaptive_passes(one_pass, x, halt_logit, max_passes, eps, early_exit=not sync_free)

    def mean(xs: list[Tensor]) -> Tensor:
        stacked = torch.stack(xs)
        if not sync_free:
            return stacked.mean(0)
        keep = pond.live.view(-1, *[1] * (stacked.dim() - 1))
        return torch.where(keep, stacked, 0.0).sum(0) / pond.live.sum()

    return replace(
        records[0],
        state=pond.output,
        aux_loss=mean([r.aux_loss for r in records]),
        gate_activity=mean([r.gate_activity for r in records]),
        stats={k: mean([r.stats[k] for r in records]) for k in records[0].stats},
        captured=tuple(c for r in records for c in r.captured),
        ponder=pond,
    )
