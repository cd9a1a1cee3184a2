"""Cumulative *dense* training FLOPs, counted at every forward a model runs while it trains.

    counter = FlopCounter()                       # a trainer callback
    Trainer(net, task, cfg, callbacks=[scheduler, counter]).fit()
    counter.dense, counter.gated, counter.by_kind  # FLOPs so far (and what they were spent on)

The counter hooks the model itself, so it sees every forward, not only the training step's:
the scheduler's knockout test (two no-grad forwards of the last batch), the KNIFE entropy
probe's forward, the Lyapunov monitor (``run_tissue`` called directly), and the
edge-gradient product of the dendrite rule. Evaluation forwards (the model in ``eval()``
mode) are not training compute and are not counted. At every evaluation it logs a
``{"kind": "flops", ...}`` record to ``metrics.jsonl`` beside the eval record; at the end it
adds ``dense_train_flops``, ``gated_train_flops`` and ``flops_by_kind`` to the summary.

What is counted, per forward of ``B·T`` tokens (``f(T)`` = the model's own analytic forward
FLOPs per token at sequence length ``T``; dense = every gate open, ``gate=1.0``; gated = each
geometric core charged its gate's open share, the model's default):

* ``train``: a grad-enabled forward charges ``f(T)·B·T``; every reverse pass that reaches its
  output (a tensor hook fires) charges ``2·f(T)·B·T`` more — for a matmul ``y = x W`` the
  backward computes ``∂x = ∂y Wᵀ`` and ``∂W = xᵀ ∂y``, each as dear as the forward, so a step
  is 3× its forward. Exact for every matmul but the first (nothing needs the gradient of the
  embedding lookup's input); torch's ``FlopCounterMode`` measures 2.8× on the small preset.
* ``probe``: a no-grad forward in training mode (knockout, KNIFE) charges ``f(T)·B·T``; a
  probe's own passes outside a forward (the splitting matrix's level passes,
  :mod:`morpho.growth.splitting`) charge what it reports through ``Network.charge``.
* ``monitor``: ``run_tissue`` called outside a forward (the Lyapunov estimate) is charged
  the tissue's part of ``f`` (without the ``2·d·V`` read-out head) for its forward, and for
  every reverse pass through its output ``2×`` plus ``2×`` for the double backward that
  :func:`~morpho.criticality.sequence_lyapunov` pairs with each one (``Jᵀ w`` and ``J v``);
  with a ``[lyapunov] weight`` the loss's backward also goes back through the last ``J v``
  (double-backward, backward and forward graph: ``6×``, charged once per estimate). These
  reverse passes need no weight gradients, so they cost less than ``2×``: ``FlopCounterMode``
  measures 14–18 forwards where 18–21 are charged — an upper bound, within 40%.
* ``edge_grad``: a grad-enabled forward of a network run with ``capture`` (a growth round of
  the dendrite rule follows) charges the ``(N, B·T·d) @ (B·T·d, N)`` product of
  :func:`~morpho.scheduler.edge_gradients`: ``2·N²·d`` per token and pass.

Not counted: the optimizer update, elementwise work outside the models' formulas, and the
KNIFE estimator's own fit on at most 256 samples per cell (a few thousand FLOPs per sample).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from morpho.network import Network
from morpho.output import Output
from morpho.trainer import Callback, Trainer, is_growing

KINDS = ("train", "probe", "monitor", "edge_grad")
BACKWARD = 2.0  # a reverse pass costs twice its forward (two matmuls per forward matmul)
DIFFERENTIABLE_MONITOR = 6.0  # backward through J v: double-backward + backward + forward


def dense_per_token(model: Any, seq_len: int) -> float:
    """Forward FLOPs per token with every gate open (a static model: its only figure)."""
    if is_growing(model):
        return float(model.flops_per_token(seq_len, gate=1.0))
    return float(model.flops_per_token(seq_len))


def head_per_token(model: Network) -> float:
    """The read-out head's share of :meth:`Network.flops_per_token`: ``2·d·V``."""
    return 2.0 * model.cfg.width * model.cfg.vocab_size


class FlopCounter(Callback):
    """Counts dense (and gated) training FLOPs of a trainer's model; see the module docstring.

    Attach it as a trainer callback, or by hand with :meth:`attach` / :meth:`detach`.
    ``dense`` and ``gated`` are running totals; ``by_kind`` splits ``dense`` by
    :data:`KINDS`. A checkpoint keeps the totals (``state_dict``).
    """

    def __init__(self, differentiable_monitor: bool = False) -> None:
        self.dense = 0.0
        self.gated = 0.0
        self.by_kind: dict[str, float] = dict.fromkeys(KINDS, 0.0)
        self.differentiable_monitor = differentiable_monitor
        self._model: Any = None
        self._handles: list[Any] = []
        self._depth = 0  # > 0 inside a forward of the model

    # ----------------------------------------------------------------- attaching
    def attach(self, model: torch.nn.Module) -> FlopCounter:
        """Wrap ``model``: its forwards (and a network's direct tissue passes) are counted.

        A :class:`~morpho.network.Network` is entered through ``run`` (``forward`` calls it)
        and ``run_tissue``; both are wrapped by instance attributes that shadow the methods.
        Any other model is hooked at ``forward``.
        """
        self.detach()
        self._model = model
        if isinstance(model, Network):
            model.run = self._counted_run(model.run)  # type: ignore[method-assign]
            model.run_tissue = self._counted_tissue(model.run_tissue)  # type: ignore[method-assign]
            model.charge = self._charged  # type: ignore[method-assign]
        else:
            self._handles = [
                model.register_forward_pre_hook(self._enter),
                model.register_forward_hook(self._leave),
            ]
        return self

    def detach(self) -> None:
        """Remove the hooks and wrappers (the totals stay)."""
        for h in self._handles:
            h.remove()
        self._handles = []
        for name in ("run", "run_tissue", "charge"):
            if self._model is not None and name in vars(self._model):
                delattr(self._model, name)
        self._model = None

    # ------------------------------------------------------------------ counting
    def _add(self, kind: str, dense: float, gated: float) -> None:
        self.dense += dense
        self.gated += gated
        self.by_kind[kind] += dense

    def _charged(self, kind: str, flops: float) -> None:
        """What a probe reports through :meth:`Network.charge` (dense; gated alike)."""
        self._add(kind, flops, flops)

    def _on_backward(self, kind: str, dense: float, gated: float) -> Callable[[Tensor], None]:
        def hook(_: Tensor) -> None:
            self._add(kind, dense, gated)

        return hook

    def _enter(self, module: torch.nn.Module, args: tuple[Any, ...]) -> None:
        self._depth += 1

    def _leave(self, model: Any, args: tuple[Any, ...], out: Any) -> None:
        self._depth -= 1
        if self._depth or not model.training or not args or not isinstance(out, Tensor):
            return
        self._charge_forward(model, args[0], out)

    def _charge_forward(self, model: Any, tokens: Tensor, out: Tensor) -> bool:
        """Charge one whole-model forward of ``tokens`` ((B, T) ids or (B, T, k) features);
        True when a backward will follow."""
        n_tokens, seq_len = tokens.shape[0] * tokens.shape[1], tokens.shape[1]
        dense = dense_per_token(model, seq_len) * n_tokens
        gated = float(model.flops_per_token(seq_len)) * n_tokens
        grad = torch.is_grad_enabled() and out.requires_grad
        self._add("train" if grad else "probe", dense, gated)
        if grad:
            out.register_hook(self._on_backward("train", BACKWARD * dense, BACKWARD * gated))
        return grad

    def _counted_run(self, run: Callable[..., Output]) -> Callable[..., Output]:
        def counted(tokens: Tensor, capture: bool = False) -> Output:
            self._depth += 1
            try:
                out = run(tokens, capture=capture)
            finally:
                self._depth -= 1
            net = self._model
            if self._depth or net is None or not net.training or out.logits is None:
                return out
            if self._charge_forward(net, tokens, out.logits) and capture:
                n_tokens = tokens.shape[0] * tokens.shape[1]
                self._add("edge_grad", *[self._edge_grad(net, n_tokens, out)] * 2)
            return out

        return counted

    @staticmethod
    def _edge_grad(net: Network, tokens: int, out: Output) -> float:
        passes = out.ponder.n_passes_run if out.ponder is not None else 1
        return 2.0 * net.tissue.num_nodes**2 * net.cfg.width * tokens * passes

    def _counted_tissue(self, run_tissue: Callable[..., Output]) -> Callable[..., Output]:
        def counted(emb: Tensor, capture: bool = False) -> Output:
            out = run_tissue(emb, capture=capture)
            net = self._model
            if self._depth or net is None or not net.training:
                return out  # inside a whole forward (counted there) or evaluating
            tokens, seq_len = emb.shape[0] * emb.shape[1], emb.shape[1]
            dense = (dense_per_token(net, seq_len) - head_per_token(net)) * tokens
            gated = (float(net.flops_per_token(seq_len)) - head_per_token(net)) * tokens
            self._add("monitor", dense, gated)
            if torch.is_grad_enabled() and out.state.requires_grad:
                pair = 2 * BACKWARD  # the reverse pass and its paired double backward
                out.state.register_hook(self._on_backward("monitor", pair * dense, pair * gated))
                if self.differentiable_monitor:
                    extra = DIFFERENTIABLE_MONITOR
                    self._add("monitor", extra * dense, extra * gated)
            return out

        return counted

    # ------------------------------------------------------------ trainer events
    def on_train_start(self, trainer: Trainer) -> None:
        self.differentiable_monitor = any(t.second_order() for t in trainer.terms)
        self.attach(trainer.net)

    def on_eval(self, trainer: Trainer, step: int, record: dict[str, Any]) -> None:
        if trainer.run is not None:
            trainer.run.log_metrics(self.record(step, record))

    def on_train_end(self, trainer: Trainer, summary: dict[str, Any]) -> None:
        self.detach()
        if trainer.run is not None and trainer.state.last_eval:
            trainer.run.log_metrics(self.record(trainer.step, trainer.state.last_eval))
        summary["dense_train_flops"] = self.dense
        summary["gated_train_flops"] = self.gated
        summary["flops_by_kind"] = dict(self.by_kind)

    def record(self, step: int, eval_record: dict[str, Any]) -> dict[str, Any]:
        """The ``flops`` metrics line: totals so far, beside the eval's bits per character
        (a classification task: its accuracy and loss)."""
        if "val_acc" in eval_record:
            metric = {k: eval_record[k] for k in ("val_acc", "val_loss")}
        else:
            metric = {"val_bpc": eval_record.get("val_bpc")}
        return {
            "kind": "flops",
            "step": step,
            "dense_train_flops": self.dense,
            "gated_train_flops": self.gated,
            **metric,
            **{f"dense_{k}": v for k, v in self.by_kind.items()},
        }

    def state_dict(self) -> dict[str, Any]:
        return {"dense": self.dense, "gated": self.gated, "by_kind": dict(self.by_kind)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.dense, self.gated = float(state["dense"]), float(state["gated"])
        self.by_kind = {k: float(state["by_kind"].get(k, 0.0)) for k in KINDS}
