"""GroMo's TINY-grown MLP as an outside peer of ``morpho bench`` on the image tasks.

GroMo (``pip install gromo``; Verbockhaven et al., "Growing Tiny Networks", TMLR 2024)
grows a one-hidden-layer SELU MLP from ``start_width`` hidden units towards the static
MLP peer's width, driven by its documented loop (its GrowingContainer tutorial), at
evenly spaced rounds in the first ``until`` of the steps::

    model.init_computation()                     # statistics pass over the training split:
    for x, y in train: loss(model(x), y).backward(); model.update_computation()
    model.compute_optimal_updates(maximum_added_neurons=k)   # TINY: eigh, svd, solve
    model.reset_computation(); model.dummy_select_update()
    for γ in (0, 0.1, 0.5, 1): loss of model.extended_forward(train)   # line search
    model.set_scaling_factor(best γ); model.apply_change()
    optimizer = a fresh one                      # GroMo swaps in new nn.Linear modules

Between rounds it trains on the bench's own batches (the same generator, steps, batch size,
AdamW, learning-rate schedule and gradient clip as every other row). Every FLOP is counted:
training steps analytically as for the static MLP (3 × 2 per weight per image); the
statistics pass, TINY's linear algebra and the line search measured by torch's
``FlopCounterMode`` (matmuls exactly; ``eigh``, ``svd`` and ``solve`` by the textbook
LAPACK counts of :data:`LINALG_FLOPS`). The run directory holds the same ``metrics.jsonl``
records as a morpho row (``eval``, ``flops`` with ``val_acc``, ``test``), ``events.jsonl``
(one ``grow`` event per round) and ``summary.json``.
"""

from __future__ import annotations

import importlib.util
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from morpho.config import RunConfig
from morpho.files import dump_toml
from morpho.optim import build_optimizer, lr_at
from morpho.rundir import RunDir

LINE_SEARCH = (0.0, 0.1, 0.5, 1.0)  # the scaling factors GroMo's tutorial tries
STATS_CHUNK = 512  # examples per forward of the statistics pass and the line search
EXTRA_KINDS = ("statistics", "linalg", "line_search")


def gromo_available() -> bool:
    """True when the optional ``gromo`` package is installed."""
    return importlib.util.find_spec("gromo") is not None


@dataclass(frozen=True)
class GromoConfig:
    """The GroMo peer's growth schedule (its training loop is the bench's)."""

    start_width: int = 2  # hidden units at the start (GroMo's tutorial starts at 2)
    until: float = 0.8  # growth rounds spread over this share of the steps (as morpho's)
    per_round: int = 0  # neurons asked for per round (0: the classes, TINY's rank bound here)


# FLOPs of the dense factorisations TINY runs (Golub & Van Loan, Matrix Computations, 4th
# ed.: symmetric QR with vectors 9n³; thin R-SVD 6mn² + 20n³; LU solve 2n³/3 + 2n²k)
def _eigh_flops(a: Any, *args: Any, **kw: Any) -> int:
    n = a[-1]
    return 9 * n**3


def _svd_flops(a: Any, *args: Any, **kw: Any) -> int:
    m, n = max(a[-2], a[-1]), min(a[-2], a[-1])
    return 6 * m * n**2 + 20 * n**3


def _solve_flops(a: Any, b: Any, *args: Any, **kw: Any) -> int:
    n, k = a[-1], (b[-1] if len(b) == len(a) else 1)
    return 2 * n**3 // 3 + 2 * n**2 * k


LINALG_FLOPS: dict[Any, Callable[..., int]] = {
    torch.ops.aten._linalg_eigh: _eigh_flops,
    torch.ops.aten._linalg_svd: _svd_flops,
    torch.ops.aten._linalg_solve_ex: _solve_flops,
}


def measured(fn: Callable[[], Any]) -> tuple[Any, float]:
    """``(fn(), FLOPs it ran)``: matmuls and :data:`LINALG_FLOPS`, by ``FlopCounterMode``."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False, custom_mapping=LINALG_FLOPS) as counter:
        out = fn()
    return out, float(counter.get_total_flops())


class GromoPeer:
    """The GroMo row of an image bench; :meth:`fit` trains it and returns its row."""

    def __init__(self, task: Any, cfg: RunConfig, target_hidden: int, peer: GromoConfig) -> None:
        from gromo.containers.growing_mlp import GrowingMLP

        self.task, self.cfg, self.peer, self.target = task, cfg, peer, target_hidden
        self.in_features = task.seq_len * task.input_dim
        torch.manual_seed(cfg.train.seed)
        self.model = GrowingMLP(
            self.in_features, task.n_classes, peer.start_width, 1, activation=nn.SELU()
        )
        self.optimizer = build_optimizer(self.model, cfg.train)
        self.generator = torch.Generator().manual_seed(cfg.train.seed)  # the bench's batches
        self.flops: dict[str, float] = dict.fromkeys(("train", *EXTRA_KINDS), 0.0)
        self.events: list[dict[str, Any]] = []

    @property
    def width(self) -> int:
        return int(self.model.layers[0].out_features)

    def n_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def logits(self, x: Tensor, extended: bool = False) -> Tensor:
        flat = x.flatten(1)  # (B, T·k)
        return self.model.extended_forward(flat) if extended else self.model(flat)

    def round_steps(self) -> list[int]:
        """Steps after which a growth round runs: evenly spaced in the first ``until``."""
        per = self.peer.per_round or self.task.n_classes
        rounds = max(0, math.ceil((self.target - self.peer.start_width) / per))
        last = int(self.peer.until * self.cfg.train.steps)
        if rounds == 0 or last < 1:
            return []
        return sorted({max(1, round(last * (i + 1) / rounds)) for i in range(rounds)})

    def train_step(self, step: int) -> float:
        t = self.cfg.train
        x, y = self.task.batch("train", t.batch_size, t.seq_len, self.generator)
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(step, t)
        self.model.train()
        loss = F.cross_entropy(self.logits(x), y.flatten())
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if t.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.grad_clip)
        self.optimizer.step()
        per_image = 2 * (self.in_features * self.width + self.width * self.task.n_classes)
        self.flops["train"] += 3 * per_image * len(y)  # forward + backward, as the MLP row
        return float(loss.detach())

    def grow(self, step: int) -> dict[str, Any]:
        """One round of the documented loop; a fresh optimizer after it."""
        x, y = self.task.splits["train"]
        ask = min(self.peer.per_round or self.task.n_classes, self.target - self.width)
        before = self.width
        self.model.eval()
        _, stats = measured(lambda: self._statistics(x, y))
        with warnings.catch_warnings():  # its notes on ill-conditioned statistics, each round
            warnings.filterwarnings("ignore", category=UserWarning, module="gromo")
            _, linalg = measured(
                lambda: self.model.compute_optimal_updates(maximum_added_neurons=ask)
            )
        self.model.reset_computation()
        self.model.dummy_select_update()
        (gamma, losses), search = measured(lambda: self._line_search(x, y))
        self.model.set_scaling_factor(gamma)
        self.model.apply_change()
        self.optimizer = build_optimizer(self.model, self.cfg.train)  # GroMo carries none
        for kind, value in zip(EXTRA_KINDS, (stats, linalg, search), strict=True):
            self.flops[kind] += value
        event = {"step": step, "kind": "grow", "rule": "tiny", "width_before": before}
        event.update(width=self.width, asked=ask, scaling=gamma, line_search=losses)
        event.update(flops={"statistics": stats, "linalg": linalg, "line_search": search})
        return event

    def _statistics(self, x: Tensor, y: Tensor) -> None:
        self.model.init_computation()
        for xs, ys in zip(x.split(STATS_CHUNK), y.split(STATS_CHUNK), strict=True):
            self.model.zero_grad()
            F.cross_entropy(self.logits(xs), ys, reduction="sum").backward()
            self.model.update_computation()

    @torch.no_grad()
    def _line_search(self, x: Tensor, y: Tensor) -> tuple[float, list[float]]:
        losses = []
        for gamma in LINE_SEARCH:
            self.model.set_scaling_factor(gamma)
            total = sum(
                float(F.cross_entropy(self.logits(xs, extended=True), ys, reduction="sum"))
                for xs, ys in zip(x.split(STATS_CHUNK), y.split(STATS_CHUNK), strict=True)
            )
            losses.append(total / len(y))
        return LINE_SEARCH[min(range(len(losses)), key=losses.__getitem__)], losses

    @torch.no_grad()
    def score(self, split: str) -> tuple[float, float]:
        """``(loss, accuracy)`` on a whole split."""
        self.model.eval()
        x, y = self.task.splits[split]
        logits = torch.cat([self.logits(xs) for xs in x.split(STATS_CHUNK)])
        self.model.train()
        return float(F.cross_entropy(logits, y)), float((logits.argmax(-1) == y).float().mean())

    def total_flops(self) -> float:
        return sum(self.flops.values())


def gromo_row(
    task: Any, cfg: RunConfig, target_hidden: int, path: Path, overwrite: bool = False
) -> dict[str, Any]:
    """Train the GroMo peer into run directory ``path``; returns its bench row."""
    peer = GromoPeer(task, cfg, target_hidden, GromoConfig())
    run = RunDir(path, overwrite=overwrite)
    run.create(dump_toml({**cfg.to_dict(), "model": {"class": "GrowingMLP", "peer": "gromo"}}))
    try:
        return _fit(peer, run)
    finally:
        run.release()


def _fit(peer: GromoPeer, run: RunDir) -> dict[str, Any]:
    t = peer.cfg.train
    rounds, best, record = set(peer.round_steps()), 0.0, {}
    for step in range(t.steps):
        loss = peer.train_step(step)
        if step % t.log_every == 0:
            run.log_metrics(
                {"kind": "train", "step": step, "loss": loss, "params": peer.n_params()}
            )
        if step + 1 in rounds:
            event = peer.grow(step + 1)
            peer.events.append(event)
            run.log_event(event)
        if (step + 1) % t.eval_every == 0 or step + 1 == t.steps:
            record = _evaluate(peer, step + 1, best)
            best = record["best_val_acc"]
            run.log_metrics(record)
            run.log_metrics(_flops_record(peer, record))
    test_loss, test_acc = peer.score("test")
    run.log_metrics({"kind": "test", "step": t.steps, "test_loss": test_loss, "test_acc": test_acc})
    summary = _summary(peer, record, test_loss, test_acc)
    run.write_summary(summary)
    return summary


def _evaluate(peer: GromoPeer, step: int, best: float) -> dict[str, Any]:
    loss, acc = peer.score("val")
    return {
        "kind": "eval",
        "step": step,
        "val_loss": loss,
        "val_acc": acc,
        "best_val_acc": max(best, acc),
    }


def _flops_record(peer: GromoPeer, record: dict[str, Any]) -> dict[str, Any]:
    total = peer.total_flops()
    return {
        "kind": "flops",
        "step": record["step"],
        "dense_train_flops": total,
        "gated_train_flops": total,
        "val_acc": record["val_acc"],
        "val_loss": record["val_loss"],
        **{f"dense_{k}": v for k, v in peer.flops.items()},
    }


def _summary(
    peer: GromoPeer, record: dict[str, Any], test_loss: float, test_acc: float
) -> dict[str, Any]:
    total, T = peer.total_flops(), peer.cfg.train.seq_len
    per_image = 2 * (peer.in_features * peer.width + peer.width * peer.task.n_classes)
    return {
        "name": "gromo",
        "params": peer.n_params(),
        "width": peer.width,
        "target_width": peer.target,
        "dense_train_flops": total,
        "gated_train_flops": total,
        "flops_by_kind": dict(peer.flops),
        "train_flops": peer.flops["train"],
        "flops_per_token": per_image / T,
        "dense_flops_per_token": per_image / T,
        "val_loss": record.get("val_loss"),
        "val_acc": record.get("val_acc"),
        "best_val_acc": record.get("best_val_acc"),
        "test_loss": test_loss,
        "test_acc": test_acc,
        "steps": peer.cfg.train.steps,
        "growth_rounds": len(peer.events),
        "task": peer.task.describe(),
    }
