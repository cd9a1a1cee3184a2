"""The training loop: fixed-shape steps, with topology changes only between steps.

    trainer = Trainer(net, task, train_cfg, run=RunDir(path), callbacks=[scheduler])
    summary = trainer.fit()

Trainer events (each callback implements any of them; see :class:`Callback`):
``on_train_start``, ``on_step_end``, ``on_eval``, ``on_edit``, ``on_train_end``.
A growth scheduler is a callback that, at its interval, calls :meth:`Trainer.apply_edit`;
that is the one place where cells, edges or parameters change during a run.

Runs survive: every ``checkpoint_every`` steps the trainer writes a checksummed checkpoint
(network, optimizer, callbacks' ``state_dict()``, RNG states, counters, and the lengths of
``metrics.jsonl`` / ``events.jsonl``), and :meth:`Trainer.restore` continues from one so
that the logs match a run done in one go, value for value (wall-clock figures aside). A
non-finite loss or gradient skips the step (parameters and optimizer state untouched),
logs a ``nonfinite`` event, and after ``max_nonfinite`` in a row stops the run with
:class:`NonFiniteError`, leaving the last good checkpoint.

The trainer trains any model that follows the :class:`Model` protocol, so static
baselines (``morpho.sims.baselines``) run through the same loop on the same batches:

* required: an ``nn.Module`` with ``forward(tokens) -> logits`` ((B, T) long → (B, T, V)),
  ``n_params() -> int`` and ``flops_per_token(seq_len) -> float`` (forward FLOPs);
* optional: ``aux_loss`` (a scalar tensor added with ``train.aux_weight``), ``stats``
  (a dict of per-cell tensors; ``gate_mean`` is logged), ``tissue`` and ``snapshot()``
  (a growing network: cells, edges, snapshots and checkpoints are written only then),
  ``gate_activity`` (with ``tissue``: the ``train.gate_l1`` penalty) and ``step``
  (set to the training step before each step).
"""

from __future__ import annotations

import math
import platform
import time
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor

from morpho import distributed
from morpho.checkpoint import save_checkpoint
from morpho.config import TrainConfig
from morpho.criticality import path_norm, tissue_lyapunov
from morpho.edits import Edit, apply_edit
from morpho.network import Network
from morpho.rundir import RunDir
from morpho.tasks import Task

LN2 = math.log(2.0)
LOG_FILES = ("metrics.jsonl", "events.jsonl")


class NonFiniteError(RuntimeError):
    """Raised when ``max_nonfinite`` consecutive steps had a non-finite loss or gradient."""


@runtime_checkable
class Model(Protocol):
    """What the trainer needs from a model; see the module docstring for optional parts."""

    def __call__(self, tokens: Tensor) -> Tensor: ...

    def n_params(self) -> int: ...

    def flops_per_token(self, seq_len: int) -> float: ...


def is_growing(net: Any) -> bool:
    """True for a model with a tissue (a :class:`Network`), false for a static baseline."""
    return getattr(net, "tissue", None) is not None


class Callback:
    """Template for trainer callbacks; override the events you need."""

    def on_train_start(self, trainer: Trainer) -> None: ...

    def on_step_end(self, trainer: Trainer, step: int, loss: Tensor) -> None: ...

    def on_eval(self, trainer: Trainer, step: int, record: dict[str, Any]) -> None: ...

    def on_edit(self, trainer: Trainer, edit: Edit) -> None: ...

    def on_train_end(self, trainer: Trainer, summary: dict[str, Any]) -> None: ...


def build_optimizer(net: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with two param groups: weight decay on matrices, none on vectors and strengths."""
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, p in sorted(net.named_parameters()):
        per_row_matrix = p.dim() >= 3 or (p.dim() == 2 and not name.startswith("banks."))
        (decay if per_row_matrix else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if cfg.sync_free:  # the fused kernel takes a device `found_inf` and skips on it
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.99), fused=True)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.99))


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to ``lr · min_lr_ratio``."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    span = max(1, cfg.steps - cfg.warmup)
    progress = min(1.0, (step - cfg.warmup) / span)
    ratio = cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return cfg.lr * ratio


def gate_penalty(net: Network) -> Tensor:
    """L1 penalty on mean gate activity, weighted by level: w = (level + 1) / (max level + 1)."""
    level = net.levels.float()  # on the device (no copy from the host tissue each step)
    weight = (level + 1) / (level.max() + 1)
    return (weight * net.gate_activity).sum() / max(1, level.numel())


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
    ) -> None:
        if not isinstance(net, torch.nn.Module) or not isinstance(net, Model):
            raise TypeError(
                f"expected an nn.Module with forward(tokens), n_params() and "
                f"flops_per_token(seq_len); got {type(net).__name__}"
            )
        self.device = _device(cfg.device)
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
        self.task = task
        self.cfg = cfg
        self.run = run
        self.callbacks = list(callbacks)
        self.progress = progress
        self.optimizer = build_optimizer(self.net, cfg)
        self.generator = torch.Generator().manual_seed(cfg.seed)
        # the monitors' own random stream: measuring leaves the run's randomness untouched
        self.monitor_generator = torch.Generator().manual_seed(cfg.seed + 7919)
        self.step = 0
        self.best_val_bpc = math.inf
        self.last_eval: dict[str, Any] = {}
        self.train_time = 0.0
        self.tokens_seen = 0
        self.train_flops = 0.0
        self.n_edits = 0
        self.nonfinite_streak = 0
        self._nf_streak: Tensor | None = None  # sync-free guard: device counters
        self._nf_count: Tensor | None = None
        self._nf_logged = 0
        self.last_batch: tuple[Tensor, Tensor] | None = None
        self.last_lyapunov: Tensor | None = None  # the latest criticality estimate
        self._flops_per_token = self.net.flops_per_token(cfg.seq_len)  # refreshed on logs and edits

    # ---------------------------------------------------------------- one step
    def loss(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """``(total loss, cross-entropy)`` of one batch."""
        logits = self.net(x)  # (B, T, V)
        ce = F.cross_entropy(logits.flatten(0, 1), y.flatten())
        total = ce
        aux = getattr(self.net, "aux_loss", None)
        if aux is not None and self.cfg.aux_weight:
            total = total + self.cfg.aux_weight * aux
        if self.cfg.gate_l1 and self.growing:
            total = total + self.cfg.gate_l1 * gate_penalty(self.net)
        return total + self.regularizers(x), ce

    def regularizers(self, x: Tensor) -> Tensor | float:
        """Ponder cost, path-norm and criticality terms of a growing network's objective.

        The Lyapunov estimate runs every ``lyapunov_every`` steps on up to 4 sequences of the
        batch (perturbation ``lyapunov_window`` tokens before the last one); its value is kept
        for the logs, and with ``lyapunov_weight`` δ the step adds ``δ·max(Λ − Λ*, 0)²``.
        """
        if not self.growing:
            return 0.0
        cfg = self.cfg
        total: Tensor | float = 0.0
        ponder = getattr(self.net, "ponder", None)
        if ponder is not None and cfg.ponder_weight:
            total = total + cfg.ponder_weight * ponder.ponder_cost
        if cfg.path_norm_weight:
            total = total + cfg.path_norm_weight * path_norm(self.net)
        if cfg.lyapunov_every and self.step % cfg.lyapunov_every == 0:
            emb = self.net.embed[x[:4]]  # (b, T, d)
            t0 = x.shape[1] - 1 - cfg.lyapunov_window
            lam = tissue_lyapunov(
                self.net,
                emb,
                cfg.lyapunov_window,
                t0=t0,
                iters=4,
                generator=self.monitor_generator,
                differentiable=bool(cfg.lyapunov_weight),
            )
            self.last_lyapunov = lam.detach()
            if cfg.lyapunov_weight:
                excess = torch.relu(lam - cfg.lyapunov_target)
                total = total + cfg.lyapunov_weight * excess.pow(2)
        return total

    def train_step(self) -> Tensor:
        x, y = self.task.batch("train", self.cfg.batch_size, self.cfg.seq_len, self.generator)
        x, y = distributed.shard(x), distributed.shard(y)
        if self.device.type == "cuda":  # pinned, asynchronous: no wait on the device here
            x, y = x.pin_memory(), y.pin_memory()
        x = x.to(self.device, non_blocking=True)
        y = y.to(self.device, non_blocking=True)
        self.last_batch = (x, y)  # read by the scheduler's knockout test
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(self.step, self.cfg)
        total, ce = self.loss(x, y)
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        if distributed.world_size() > 1:
            self._all_reduce(total, ce)
        max_norm = self.cfg.grad_clip or math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(self.net.parameters(), max_norm)
        if self.cfg.sync_free:
            self._guarded_step(total.detach() + grad_norm)
            return ce.detach()
        if not bool(torch.isfinite(total.detach() + grad_norm)):  # host sync: the guard
            self._skip_nonfinite(float(total.detach()), float(grad_norm))
            return ce.detach()
        self.nonfinite_streak = 0
        self.optimizer.step()
        return ce.detach()

    def _guarded_step(self, check: Tensor) -> None:
        """The non-finite guard without a host sync (``train.sync_free``).

        The fused AdamW kernel reads ``found_inf`` on the device and, where it is 1, leaves
        parameters and state as they were (its step counters are taken back): the same skip
        as the host guard. Skips and the streak are counted on the device and read at the
        next log step (:meth:`_check_nonfinite`).
        """
        found = (~torch.isfinite(check)).float().reshape(())
        self.optimizer.found_inf = found  # type: ignore[attr-defined]
        self.optimizer.step()
        streak = self._nf_streak if self._nf_streak is not None else torch.zeros_like(found)
        count = self._nf_count if self._nf_count is not None else torch.zeros_like(found)
        self._nf_streak = (streak + 1) * found  # consecutive skips, 0 after a good step
        self._nf_count = count + found

    def _check_nonfinite(self) -> None:
        """Log the steps the sync-free guard skipped since the last check; stop on a streak."""
        if self._nf_streak is None or self._nf_count is None:
            return
        count, streak = int(self._nf_count), int(self._nf_streak)  # the sync, at a log step
        new, self._nf_logged = count - self._nf_logged, count
        self.nonfinite_streak = streak
        if new and self.run is not None:
            self.run.log_event(
                {
                    "step": self.step,
                    "kind": "nonfinite",
                    "skipped_steps": new,
                    "action": "skipped on the device (sync-free guard)",
                    "streak": streak,
                }
            )
        if streak >= self.cfg.max_nonfinite:
            self._stop_nonfinite(streak, f"up to step {self.step}")

    def _all_reduce(self, total: Tensor, ce: Tensor) -> None:
        """Average gradients, losses and per-cell statistics over data-parallel ranks."""
        params = list(self.net.parameters())
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        stats = list((getattr(self.net, "stats", None) or {}).values())
        distributed.all_reduce_mean_([p.grad for p in params] + [total, ce] + stats)

    def _skip_nonfinite(self, loss: float, grad_norm: float) -> None:
        """Leave parameters and optimizer state as they were; log; stop after a streak."""
        self.optimizer.zero_grad(set_to_none=True)
        self.nonfinite_streak += 1
        if self.run is not None:
            self.run.log_event(
                {
                    "step": self.step,
                    "kind": "nonfinite",
                    "loss": str(loss),
                    "grad_norm": str(grad_norm),
                    "action": "skipped step",
                    "streak": self.nonfinite_streak,
                }
            )
        if self.nonfinite_streak >= self.cfg.max_nonfinite:
            self._stop_nonfinite(
                self.nonfinite_streak,
                f"last at step {self.step}, loss {loss}, grad norm {grad_norm}",
            )

    def _stop_nonfinite(self, streak: int, detail: str) -> None:
        """Save the last good state (growing runs with a run directory) and stop."""
        where = ""
        if self.run is not None and self.growing:
            where = f"; last good state saved to {self.checkpoint()}"
        raise NonFiniteError(
            f"non-finite loss or gradient in {streak} consecutive steps ({detail}){where}"
        )

    def apply_edit(self, edit: Edit) -> Edit:
        """Apply a topology edit to the network and the optimizer; fire ``on_edit``."""
        apply_edit(self.net, edit, self.optimizer)
        self.n_edits += 1
        self._flops_per_token = self.net.flops_per_token(self.cfg.seq_len, gate=1.0)
        for cb in self.callbacks:
            cb.on_edit(self, edit)
        return edit

    @torch.no_grad()
    def evaluate(self) -> dict[str, Any]:
        """Validation bits per token on the task's fixed windows."""
        self.net.eval()
        losses = []
        for x, y in self.task.eval_batches(
            self.cfg.eval_batches, self.cfg.batch_size, self.cfg.seq_len
        ):
            logits = self.net(x.to(self.device))
            losses.append(F.cross_entropy(logits.flatten(0, 1), y.to(self.device).flatten()))
        self.net.train()
        val_loss = float(torch.stack(losses).mean())
        val_bpc = val_loss / LN2
        self.best_val_bpc = min(self.best_val_bpc, val_bpc)
        record = {
            "kind": "eval",
            "step": self.step,
            "val_loss": val_loss,
            "val_bpc": val_bpc,
            "best_val_bpc": self.best_val_bpc,
        }
        gate = self.gate_mean()
        if gate is not None:
            record["gate_mean"] = gate
        return record

    def gate_mean(self) -> float | None:
        """Mean gate activity over cells in the last forward; None for a model without gates."""
        stats = getattr(self.net, "stats", None)
        return float(stats["gate_mean"].mean()) if stats and "gate_mean" in stats else None

    # ------------------------------------------------------------------ the loop
    def fit(self) -> dict[str, Any]:
        """Train for ``cfg.steps`` steps; returns the summary (also written to the run)."""
        for cb in self.callbacks:
            cb.on_train_start(self)
        if self.run is not None and self.step == 0 and self.growing:
            self.run.save_snapshot(self.net.snapshot(), 0, {"kind": "start"})
        with _progress(self.progress, self.cfg.steps, self.step) as bar:
            while self.step < self.cfg.steps:
                self._one_step(bar)
        record = self.evaluate()
        self._log(record)
        summary = self.summary()
        if self.run is not None and self.growing:
            self.run.save_snapshot(
                self.net.snapshot(), self.step, {"kind": "end", "val_bpc": record["val_bpc"]}
            )
            save_checkpoint(
                self.run.path / "checkpoints" / "final.pt",
                self.net,
                self.optimizer,
                step=self.step,
                extra=self._checkpoint_extra(),
            )
        for cb in self.callbacks:
            cb.on_train_end(self, summary)
        if self.run is not None:
            self.run.write_summary(summary)
        return summary

    def _one_step(self, bar: Any) -> None:
        if hasattr(self.net, "step"):
            self.net.step = self.step
        t0 = time.perf_counter()
        ce = self.train_step()
        tokens = self.cfg.batch_size * self.cfg.seq_len
        if self.step % self.cfg.log_every == 0 or self.step == self.cfg.steps - 1:
            ce_value = float(ce)  # the only host sync of a step, on logging steps
            self._check_nonfinite()
            self.train_time += time.perf_counter() - t0
            self._flops_per_token = self.net.flops_per_token(self.cfg.seq_len)
            self._log(self._train_record(ce_value))
            bar.update(ce_value, self._n_cells(), self.tokens_per_s)
        else:
            self.train_time += time.perf_counter() - t0
        self.tokens_seen += tokens
        self.train_flops += 3 * self._flops_per_token * tokens  # forward + backward ≈ 3× forward
        self.step += 1
        for cb in self.callbacks:
            cb.on_step_end(self, self.step, ce)
        if self.step % self.cfg.eval_every == 0 and self.step < self.cfg.steps:
            record = self.evaluate()
            self._log(record)
            for cb in self.callbacks:
                cb.on_eval(self, self.step, record)
        every = self.cfg.checkpoint_every
        if (
            every
            and self.step % every == 0
            and self.step < self.cfg.steps
            and self.run
            and self.growing
        ):
            self.checkpoint()
        bar.advance()

    # ------------------------------------------------------------ checkpoints
    def checkpoint(self) -> str:
        """Write ``checkpoints/step_<step>.pt`` (atomic, checksummed); keep the newest few."""
        assert self.run is not None
        folder = self.run.path / "checkpoints"
        path = folder / f"step_{self.step:08d}.pt"
        save_checkpoint(
            path, self.net, self.optimizer, step=self.step, extra=self._checkpoint_extra()
        )
        for old in sorted(folder.glob("step_*.pt"))[: -self.cfg.keep_checkpoints]:
            old.unlink()
        return str(path)

    def _checkpoint_extra(self) -> dict[str, Any]:
        assert self.run is not None
        return {
            "task": self.task.describe(),
            "trainer": {
                "step": self.step,
                "best_val_bpc": self.best_val_bpc,
                "last_eval": self.last_eval,
                "train_time": self.train_time,
                "tokens_seen": self.tokens_seen,
                "train_flops": self.train_flops,
                "n_edits": self.n_edits,
                "flops_per_token": self._flops_per_token,
                "last_lyapunov": None if self.last_lyapunov is None else float(self.last_lyapunov),
            },
            "rng": {
                "torch": torch.get_rng_state(),
                "data": self.generator.get_state(),
                "monitor": self.monitor_generator.get_state(),
            },
            "callbacks": {
                type(cb).__name__: cb.state_dict()
                for cb in self.callbacks
                if hasattr(cb, "state_dict")
            },
            "log_bytes": {
                name: (self.run.path / name).stat().st_size
                for name in LOG_FILES
                if (self.run.path / name).exists()
            },
        }

    def restore(self, payload: dict[str, Any]) -> None:
        """Continue from a checkpoint payload whose network is already ``self.net``.

        Restores the optimizer, callbacks, RNG states and counters, and cuts the run's
        logs and snapshots back to the checkpoint's step.
        """
        extra = payload["extra"]
        self.optimizer.load_state_dict(payload["optimizer"])
        state = extra["trainer"]
        self.step = int(state["step"])
        self.best_val_bpc = float(state["best_val_bpc"])
        self.last_eval = dict(state["last_eval"])
        self.train_time = float(state["train_time"])
        self.tokens_seen = int(state["tokens_seen"])
        self.train_flops = float(state["train_flops"])
        self.n_edits = int(state["n_edits"])
        self._flops_per_token = float(state["flops_per_token"])
        if state.get("last_lyapunov") is not None:
            self.last_lyapunov = torch.tensor(float(state["last_lyapunov"]))
        torch.set_rng_state(extra["rng"]["torch"])
        self.generator.set_state(extra["rng"]["data"])
        if "monitor" in extra["rng"]:
            self.monitor_generator.set_state(extra["rng"]["monitor"])
        for cb in self.callbacks:
            if hasattr(cb, "load_state_dict") and type(cb).__name__ in extra["callbacks"]:
                cb.load_state_dict(extra["callbacks"][type(cb).__name__])
        if self.run is not None:
            self.run.rewind(extra["log_bytes"], self.step)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens_seen / self.train_time if self.train_time else 0.0

    def _n_cells(self) -> int | None:
        return self.net.tissue.num_nodes if self.growing else None

    def _n_edges(self) -> int | None:
        return int(self.net.tissue.edge_index.shape[1]) if self.growing else None

    def _train_record(self, ce: float) -> dict[str, Any]:
        stats = getattr(self.net, "stats", None) or {}
        return {
            "kind": "train",
            "step": self.step,
            "loss": ce,
            "bpc": ce / LN2,
            "lr": self.optimizer.param_groups[0]["lr"],
            "cells": self._n_cells(),
            "edges": self._n_edges(),
            "params": self.net.n_params(),
            "tokens_per_s": self.tokens_per_s,
            "gate_mean": self.gate_mean(),
            "surprise_mean": float(stats["surprise"].mean()) if "surprise" in stats else None,
            **self._mechanism_record(),
        }

    def _mechanism_record(self) -> dict[str, Any]:
        """Monitors of the optional mechanisms (issue 8) for a train log line."""
        if not self.growing:
            return {}
        out: dict[str, Any] = {}
        if self.last_lyapunov is not None:
            out["lyapunov"] = float(self.last_lyapunov)
        if self.cfg.path_norm_weight:
            with torch.no_grad():
                out["path_norm"] = float(path_norm(self.net))
        if "repr_entropy" in self.net.tissue:  # written by the scheduler at its checks
            out["repr_entropy"] = float(self.net.tissue.repr_entropy.mean())
        ponder = getattr(self.net, "ponder", None)
        if ponder is not None:
            out["ponder_passes"] = float(ponder.passes.float().mean())
            out["ponder_cost"] = float(ponder.ponder_cost.detach())
        return out

    def _log(self, record: dict[str, Any]) -> None:
        self.last_eval = record if record.get("kind") == "eval" else self.last_eval
        if self.run is not None:
            self.run.log_metrics(record)

    def summary(self) -> dict[str, Any]:
        net = self.net
        flops = net.flops_per_token(self.cfg.seq_len)
        return {
            "val_bpc": self.last_eval.get("val_bpc"),
            "best_val_bpc": self.best_val_bpc,
            "steps": self.step,
            "params": net.n_params(),
            "cells": self._n_cells(),
            "edges": self._n_edges(),
            "edits": self.n_edits,
            "gate_mean": self.gate_mean(),
            "tokens_per_s": self.tokens_per_s,
            "train_flops": self.train_flops,
            "flops_per_token": flops,
            "dense_flops_per_token": (
                net.flops_per_token(self.cfg.seq_len, gate=1.0) if self.growing else flops
            ),
            **self._mechanism_record(),
            "task": self.task.describe(),
            "versions": {"python": platform.python_version(), "torch": torch.__version__},
        }


def _device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; expected cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available; expected cpu")
    return device


class _NoBar:
    def update(self, loss: float, cells: int, tps: float) -> None: ...

    def advance(self) -> None: ...

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None: ...


class _RichBar(_NoBar):
    """A rich progress bar showing loss, cells and tokens/s."""

    def __init__(self, total: int, done: int) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("[bold]grow"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TextColumn("loss {task.fields[loss]:.3f}"),
            TextColumn("cells {task.fields[cells]}"),
            TextColumn("{task.fields[tps]:,.0f} tok/s"),
            TimeRemainingColumn(),
        )
        self.task = self.progress.add_task(
            "grow", total=total, completed=done, loss=math.nan, cells=0, tps=0.0
        )

    def update(self, loss: float, cells: int, tps: float) -> None:
        self.progress.update(self.task, loss=loss, cells=cells, tps=tps)

    def advance(self) -> None:
        self.progress.advance(self.task)

    def __enter__(self) -> _RichBar:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


def _progress(show: bool, total: int, done: int) -> _NoBar:
    return _RichBar(total, done) if show else _NoBar()
