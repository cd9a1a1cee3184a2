"""The training loop: fixed-shape steps, with topology changes only between steps.

    trainer = Trainer(net, task, cfg.train, run=RunDir(path), callbacks=[scheduler],
                      terms=build_terms(cfg))
    summary = trainer.fit()

Callbacks (:mod:`morpho.callbacks`) get six events; a growth scheduler is one that calls
:meth:`Trainer.apply_edit`, the one place cells, edges or parameters change in a run. The
objective is the cross-entropy plus, for a growing network, the cells' local prediction
loss (``train.aux_weight``), the gate penalty (``train.gate_l1``) and the plug-in terms
(:mod:`morpho.terms`), which also log their monitors. Every ``checkpoint_every`` steps a
checksummed checkpoint is written and :meth:`Trainer.restore` continues from it, the logs
matching a run done in one go (wall-clock aside; the checkpoint glue is
:func:`morpho.checkpoint.save_trainer_checkpoint`). Non-finite steps: :mod:`morpho.guard`.
What a log line, an evaluation and ``summary.json`` hold is :mod:`morpho.records`.

The task's kind (:func:`morpho.tasks.task_kind`) sets what an evaluation reports: bits per
token (``val_bpc``) for a language task; loss and accuracy (``val_loss``, ``val_acc``) on
the validation split for a classification task, whose final evaluation also scores the
held-out test split (``test_acc``). The loss is the same cross-entropy for both: a
classifier's logits are (B, 1, C) against (B, 1) targets.

Any :class:`Model` trains here (static baselines on the same batches): an ``nn.Module``
with ``forward(tokens) -> logits`` ((B, T) long → (B, T, V); a classifier: the task's
inputs → (B, 1, C)), ``n_params()`` and
``flops_per_token(seq_len)``. A growing :class:`~morpho.network.Network` also has
``run(tokens, capture)`` (its forward record), a ``tissue`` and ``snapshot()``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor

from morpho import distributed
from morpho.apply import apply_edit
from morpho.callbacks import Callback, StepResult, TrainerState
from morpho.checkpoint import restore_trainer, save_trainer_checkpoint
from morpho.coerce import require
from morpho.device import DEVICE_NAMES, is_device_name, resolve_device
from morpho.edits import Edit
from morpho.guard import NonFiniteError, NonFiniteGuard
from morpho.network import Network
from morpho.optim import build_optimizer, gate_penalty, lr_at
from morpho.optstate import StatePolicy, install_rewarm
from morpho.output import Output
from morpho.progress import NoBar, progress_bar
from morpho.records import (
    LN2,
    flops_per_token,
    gate_mean,
    n_cells,
    passes_of,
    run_summary,
    train_record,
)
from morpho.rundir import RunDir
from morpho.tasks import ClassifyTask, Task, task_kind
from morpho.terms import StepContext, Term

MAX_INT64 = 2**63 - 1  # the counters a checkpoint stores (steps, checkpoint_every)
MAX_SEED = 2**32 - 1  # the range every generator a run seeds takes (numpy's is the narrowest)


@dataclass(frozen=True)
class TrainConfig:
    """The training loop."""

    steps: int = 600  # optimizer steps
    batch_size: int = 16  # sequences per batch
    seq_len: int = 64  # tokens per sequence
    lr: float = 3e-3  # peak AdamW learning rate
    min_lr_ratio: float = 0.1  # cosine decay ends at lr · min_lr_ratio
    warmup: int = 50  # linear warm-up steps
    weight_decay: float = 0.05  # AdamW decay on matrices (not on vectors or edge strengths)
    grad_clip: float = 1.0  # global gradient-norm clip (0 disables)
    aux_weight: float = 0.1  # weight of the cells' local next-input prediction loss
    gate_l1: float = 0.5  # L1 penalty on gate activity of growing nets, more at higher levels
    eval_every: int = 100  # steps between validation passes
    eval_batches: int = 8  # batches per validation pass (fixed windows)
    log_every: int = 10  # steps between metrics.jsonl lines
    checkpoint_every: int = 0  # steps between resumable checkpoints (0: only the final one)
    keep_checkpoints: int = 2  # step checkpoints kept on disk (the newest ones)
    max_nonfinite: int = 5  # consecutive non-finite steps before the run stops
    sync_free: bool = False  # guard non-finite steps on the device (fused AdamW skips them);
    # checked and logged at log steps, so a non-logging step never waits for the device
    device: str = "cpu"  # torch device: cpu, cuda, cuda:1, mps
    seed: int = 0  # seeds data order, initialisation and noise

    def __post_init__(self) -> None:
        require(self.steps >= 0, "train.steps", ">= 0", self.steps)
        require(0 <= self.seed <= MAX_SEED, "train.seed", f"in [0, {MAX_SEED}]", self.seed)
        for name in ("steps", "checkpoint_every"):  # counters a checkpoint stores as int64
            value = getattr(self, name)
            require(value <= MAX_INT64, f"train.{name}", f"<= {MAX_INT64}", value)
        for name in (
            "batch_size",
            "seq_len",
            "eval_every",
            "eval_batches",
            "log_every",
            "keep_checkpoints",
            "max_nonfinite",
        ):
            require(getattr(self, name) >= 1, f"train.{name}", ">= 1", getattr(self, name))
        require(0 < self.lr <= 10, "train.lr", "in (0, 10]", self.lr)  # also refuses nan, inf
        require(is_device_name(self.device), "train.device", DEVICE_NAMES, self.device)
        require(0 <= self.min_lr_ratio <= 1, "train.min_lr_ratio", "in [0, 1]", self.min_lr_ratio)
        for name in (
            "warmup",
            "weight_decay",
            "grad_clip",
            "aux_weight",
            "gate_l1",
            "checkpoint_every",
        ):
            require(getattr(self, name) >= 0, f"train.{name}", ">= 0", getattr(self, name))


__all__ = [
    "Callback",
    "NonFiniteError",
    "StepResult",
    "Trainer",
    "TrainerState",
    "build_optimizer",
    "gate_penalty",
    "lr_at",
]


@runtime_checkable
class Model(Protocol):
    """What the trainer needs from a model; see the module docstring for optional parts."""

    def __call__(self, tokens: Tensor) -> Tensor: ...

    def n_params(self) -> int: ...

    def flops_per_token(self, seq_len: int) -> float: ...


def domain_bpc(task: Any, losses: Sequence[Tensor]) -> dict[str, float]:
    """``val_bpc/<domain>`` per domain of a task that names each evaluation batch's domain
    (``task.eval_domains``, e.g. a stream of language domains); empty otherwise."""
    names = getattr(task, "eval_domains", None)
    if not names or len(names) != len(losses):
        return {}
    per: dict[str, list[float]] = {}
    for name, loss in zip(names, losses, strict=True):
        per.setdefault(name, []).append(float(loss))
    return {f"val_bpc/{k}": sum(v) / len(v) / LN2 for k, v in per.items()}


def is_growing(net: Any) -> bool:
    """True for a model with a tissue (a :class:`Network`), false for a static baseline."""
    return getattr(net, "tissue", None) is not None


class Trainer:
    """Trains a :class:`Network` (or any :class:`Model`) on a :class:`Task`, logging to a
    :class:`RunDir`."""

    def __init__(
        self,
        net: Network | Model,
        task: Task,
        cfg: TrainConfig,
        run: RunDir | None = None,
        callbacks: Sequence[Callback] = (),
        progress: bool = False,
        terms: Sequence[Term] = (),
    ) -> None:
        if not isinstance(net, torch.nn.Module) or not isinstance(net, Model):
            raise TypeError(
                f"expected an nn.Module with forward(tokens), n_params() and "
                f"flops_per_token(seq_len); got {type(net).__name__}"
            )
        self.device = resolve_device(cfg.device)
        self.net: Any = net.to(self.device)
        if isinstance(self.net, Network):  # ACT then runs its full budget: no early-exit read
            if cfg.sync_free and self.net.cfg.gate_skip_backward:
                raise ValueError(
                    "train.sync_free needs network.gate_skip_backward = 0 (its "
                    "compact backward reads the open rows on the host); got "
                    f"{self.net.cfg.gate_skip_backward}"
                )
            self.net.sync_free = cfg.sync_free
        self.growing = is_growing(net)
        self.has_record = callable(getattr(self.net, "run", None))  # forward with by-products
        self.task, self.cfg, self.run = task, cfg, run
        self.classify = task_kind(task) == "classify"
        self.callbacks, self.terms = list(callbacks), list(terms)
        self.progress = progress
        self.optimizer = build_optimizer(self.net, cfg)
        install_rewarm(self.optimizer)  # a re-warm in a resumed optimizer state goes on
        self.generator = torch.Generator().manual_seed(cfg.seed)
        # the monitors' own random stream: measuring leaves the run's randomness untouched
        self.monitor_generator = torch.Generator().manual_seed(cfg.seed + 7919)
        self.state = TrainerState(flops_per_token=self.net.flops_per_token(cfg.seq_len))
        self.guard = NonFiniteGuard(
            cfg.max_nonfinite,
            None if run is None else run.log_event,
            lambda: self.checkpoint() if self.run is not None and self.growing else None,
        )

    @property
    def step(self) -> int:
        return self.state.step

    @step.setter
    def step(self, value: int) -> None:
        self.state.step = value

    def forward(self, x: Tensor, capture: bool = False) -> tuple[Tensor, Output | None]:
        """``(logits, record)`` of a batch; the record is None for a plain model."""
        if not self.has_record:
            return self.net(x), None
        out = self.net.run(x, capture=capture)
        return out.logits, out

    def loss(
        self, x: Tensor, y: Tensor, capture: bool = False
    ) -> tuple[Tensor, Tensor, Output | None]:
        """``(total loss, cross-entropy, forward record)`` of one batch."""
        logits, out = self.forward(x, capture)  # (B, T, V)
        ce = F.cross_entropy(logits.flatten(0, 1), y.flatten())
        total = ce
        if out is not None and self.cfg.aux_weight:
            total = total + self.cfg.aux_weight * out.aux_loss
        if out is not None and self.cfg.gate_l1 and self.growing:
            total = total + self.cfg.gate_l1 * gate_penalty(self.net, out.gate_activity)
        ctx = StepContext(self.net, out, (x, y), self.step, self.monitor_generator)
        extra: Tensor | float = 0.0
        for term in self.terms:
            value = term.loss(ctx)
            if value is not None:
                extra = extra + value
        return total + extra, ce, out

    def train_step(self) -> StepResult:
        at_step = getattr(self.task, "at_step", None)  # a task whose data follow the step
        if at_step is not None:
            at_step(self.step)
        x, y = self.task.batch("train", self.cfg.batch_size, self.cfg.seq_len, self.generator)
        x, y = distributed.shard(x), distributed.shard(y)
        if self.device.type == "cuda":  # pinned, asynchronous: no wait on the device here
            x, y = x.pin_memory(), y.pin_memory()
        x = x.to(self.device, non_blocking=True)
        y = y.to(self.device, non_blocking=True)
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(self.step, self.cfg)
        capture = any([cb.wants_capture(self, self.step) for cb in self.callbacks])  # ask all
        total, ce, out = self.loss(x, y, capture)
        # a term that ran its own forward in this step (the Lyapunov probe) reports it
        probes = [o for o in (t.log_output() for t in self.terms) if o is not None]
        report = probes[-1] if probes else out
        self.state.ponder_passes = passes_of(report)
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        if distributed.world_size() > 1:
            self._all_reduce(total, ce, out)
        max_norm = self.cfg.grad_clip or math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(self.net.parameters(), max_norm)
        result = StepResult(ce.detach(), out, (x, y), report)
        if self.cfg.sync_free:
            self.guard.device_step(self.optimizer, total.detach() + grad_norm)
        elif not bool(torch.isfinite(total.detach() + grad_norm)):  # host sync: the guard
            self.guard.skip(self.optimizer, float(total.detach()), float(grad_norm), self.step)
        else:
            self.guard.streak = 0
            self.optimizer.step()
        return result

    def _all_reduce(self, total: Tensor, ce: Tensor, out: Output | None) -> None:
        """Average gradients, losses and per-cell statistics over data-parallel ranks."""
        params = list(self.net.parameters())
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        stats = list(out.stats.values()) if out is not None else []
        distributed.all_reduce_mean_([p.grad for p in params] + [total, ce] + stats)

    def apply_edit(self, edit: Edit, policy: StatePolicy | None = None) -> Edit:
        """Apply a topology edit to the network and the optimizer (its state by ``policy``,
        default exact: :mod:`morpho.optstate`); fire ``on_edit``."""
        apply_edit(self.net, edit, self.optimizer, policy=policy)
        self.state.n_edits += 1
        self.state.flops_per_token = flops_per_token(self, None, self.state.ponder_passes, 1.0)
        for cb in self.callbacks:
            cb.on_edit(self, edit)
        return edit

    def evaluate(self) -> dict[str, Any]:
        """Validation bits per token on the task's fixed windows (a classification task:
        loss and accuracy on its validation split)."""
        return self._evaluate()[0]

    @torch.no_grad()
    def _evaluate(self) -> tuple[dict[str, Any], Output | None]:
        """:meth:`evaluate`'s record and the record of its last forward."""
        cfg = self.cfg
        batches = self.task.eval_batches(cfg.eval_batches, cfg.batch_size, cfg.seq_len)
        if self.classify:
            loss, acc, out = self._score(batches)
            best = max(acc, float(self.state.last_eval.get("best_val_acc", 0.0)))
            record = {"kind": "eval", "step": self.step, "val_loss": loss, "val_acc": acc}
            return {**record, "best_val_acc": best, **_gate(out)}, out
        self.net.eval()
        losses, out = [], None
        for x, y in batches:
            logits, out = self.forward(x.to(self.device))
            losses.append(F.cross_entropy(logits.flatten(0, 1), y.to(self.device).flatten()))
        self.state.ponder_passes = passes_of(out)
        self.net.train()
        val_loss = float(torch.stack(losses).mean())
        val_bpc = val_loss / LN2
        self.state.best_val_bpc = min(self.state.best_val_bpc, val_bpc)
        record = {
            "kind": "eval",
            "step": self.step,
            "val_loss": val_loss,
            "val_bpc": val_bpc,
            "best_val_bpc": self.state.best_val_bpc,
        }
        return {**record, **domain_bpc(self.task, losses), **_gate(out)}, out

    def score(self, batches: Sequence[tuple[Tensor, Tensor]]) -> tuple[float, float]:
        """``(mean cross-entropy, accuracy)`` of a classifier over ``batches``, weighted by
        example (logits (B, 1, C) against (B, 1) targets)."""
        return self._score(batches)[:2]

    @torch.no_grad()
    def _score(self, batches: Sequence[tuple[Tensor, Tensor]]) -> tuple[float, float, Any]:
        """:meth:`score` and the record of its last forward."""
        self.net.eval()
        loss, correct, n, out = 0.0, 0, 0, None
        for x, y in batches:
            logits, out = self.forward(x.to(self.device))
            flat, target = logits.flatten(0, 1), y.to(self.device).flatten()
            loss += float(F.cross_entropy(flat, target, reduction="sum"))
            correct += int((flat.argmax(-1) == target).sum())
            n += len(target)
        self.state.ponder_passes = passes_of(out)
        self.net.train()
        return loss / n, correct / n, out

    def fit(self) -> dict[str, Any]:
        """Train for ``cfg.steps`` steps; returns the summary (also written to the run)."""
        for cb in self.callbacks:
            cb.on_train_start(self)
        if self.run is not None and self.step == 0 and self.growing:
            self.run.save_snapshot(self.net.snapshot(), 0, {"kind": "start"})
        with progress_bar(self.progress, self.cfg.steps, self.step) as bar:
            while self.step < self.cfg.steps:
                self._one_step(bar)
        record, out = self._evaluate()
        self._log(record)
        summary = run_summary(self, out, out)
        if self.classify:  # the held-out split, scored once, at the end
            task = cast(ClassifyTask, self.task)
            batches = task.eval_batches(0, self.cfg.batch_size, 0, split="test")
            loss, acc, out = self._score(batches)
            test = {"kind": "test", "step": self.step, "test_loss": loss, "test_acc": acc}
            self._log(test)
            summary.update(test_loss=loss, test_acc=acc)
        if self.run is not None and self.growing:
            stats = out.stats if out is not None else None
            metric = "val_acc" if self.classify else "val_bpc"
            end = {"kind": "end", metric: record[metric]}
            self.run.save_snapshot(self.net.snapshot(stats), self.step, end)
            self.checkpoint("final.pt")
        for cb in self.callbacks:
            cb.on_train_end(self, summary)
        if self.run is not None:
            self.run.write_summary(summary)
        return summary

    def _one_step(self, bar: NoBar) -> None:
        state = self.state
        if hasattr(self.net, "step"):
            self.net.step = self.step
        t0 = time.perf_counter()
        result = self.train_step()
        tokens = self.cfg.batch_size * self.cfg.seq_len
        if self.step % self.cfg.log_every == 0 or self.step == self.cfg.steps - 1:
            ce_value = float(result.ce)  # the only host sync of a step, on logging steps
            if self.cfg.sync_free:
                self.guard.check_device(self.step)
            state.train_time += time.perf_counter() - t0
            state.flops_per_token = flops_per_token(self, result.output, passes_of(result.report))
            self._log(train_record(self, ce_value, result.output, result.report))
            bar.update(ce_value, n_cells(self), self.tokens_per_s)
        else:
            state.train_time += time.perf_counter() - t0
        state.tokens_seen += tokens
        state.train_flops += 3 * state.flops_per_token * tokens  # forward + backward ≈ 3×
        state.step += 1
        for cb in self.callbacks:
            cb.on_step_end(self, self.step, result)
        if self.step % self.cfg.eval_every == 0 and self.step < self.cfg.steps:
            record = self.evaluate()
            self._log(record)
            for cb in self.callbacks:
                cb.on_eval(self, self.step, record)
        every = self.cfg.checkpoint_every
        if every and self.step % every == 0 and self.step < self.cfg.steps:
            if self.run and self.growing:
                self.checkpoint()
        bar.advance()

    def checkpoint(self, name: str | None = None) -> str:
        """Write ``checkpoints/step_<step>.pt`` (or ``name``): :func:`morpho.checkpoint.
        save_trainer_checkpoint`."""
        return save_trainer_checkpoint(self, name)

    def restore(self, payload: dict[str, Any]) -> None:
        """Continue from a checkpoint payload whose network is already ``self.net``: the
        optimizer, trainer state, terms, callbacks and RNG states come back, and the run's
        logs and snapshots are cut back to the checkpoint's step."""
        restore_trainer(self, payload)
        if self.run is not None:
            self.run.rewind(payload["extra"]["log_bytes"], self.step)

    @property
    def tokens_per_s(self) -> float:
        s = self.state
        return s.tokens_seen / s.train_time if s.train_time else 0.0

    def _log(self, record: dict[str, Any]) -> None:
        if record.get("kind") == "eval":
            self.state.last_eval = record
        if self.run is not None:
            self.run.log_metrics(record)


def _gate(out: Output | None) -> dict[str, float]:
    """``{"gate_mean": …}`` of a forward record, or nothing for a model without gates."""
    gate = gate_mean(out)
    return {} if gate is None else {"gate_mean": gate}
