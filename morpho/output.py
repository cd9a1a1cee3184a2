"""What a forward computed: one frozen record, returned by :meth:`morpho.network.Network.run`.

    out = net.run(tokens, capture=True)    # logits, state, aux loss, gates, stats, captures
    loss = F.cross_entropy(out.logits.flatten(0, 1), y.flatten()) + 0.1 * out.aux_loss
    loss.backward()
    out.captured[0].inputs[k].grad          # ∂L/∂x of level k (pass 0), for edge gradients

Nothing a forward computes is left on the module: whoever needs a by-product keeps the
record, and a probe that runs an extra forward simply drops its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

from morpho.halting import Ponder


@dataclass(frozen=True)
class Capture:
    """One pass's per-level tensors, kept when the forward was asked to capture.

    Shapes:
        inputs: per level (n_l, B, T, d) aggregated inputs ``x`` with ``.grad`` retained
            (empty when grad was disabled); outputs: per level (n_l, B, T, d), detached.
    """

    inputs: list[Tensor]
    outputs: list[Tensor]


@dataclass(frozen=True)
class Output:
    """The by-products of one forward (ACT: means over the passes some token needed).

    Shapes:
        state: (B, T, d) pooled readout state; logits: (B, T, V), None for the tissue alone;
        aux_loss: () summed local prediction loss; gate_activity: (N,) differentiable mean
        gate per cell; stats: ``surprise``, ``gate_mean``, ``gate_entropy``, each (N,)
        detached; captured: one :class:`Capture` per pass, empty unless asked for;
        ponder: the halting record of ACT, None without it.
    """

    state: Tensor
    aux_loss: Tensor
    gate_activity: Tensor
    stats: dict[str, Tensor]
    captured: tuple[Capture, ...] = ()
    ponder: Ponder | None = None
    logits: Tensor | None = field(default=None)
