"""morpho's own continual learner: neurogenesis on task-change surprise, viscous old cells,
task routing through the cells born for a task, and an optional sleep phase.

Four parts, each switchable (``--methods morpho-no-growth``, ``-no-viscosity``,
``-no-routing``, ``-no-sleep``):

* **Neurogenesis.** The learner keeps running means of the batch loss and of every cell's
  surprise (``tissue.surprise_ema``). When the loss jumps by more than ``jump_nats`` and by
  a factor ``jump_ratio`` over its mean — a new task has begun; the learner is not told —
  the most surprised cell of each level divides (:func:`morpho.apply.split_unequal`,
  daughters tagged with the current task for movies). Division is *asymmetric*, like a stem
  cell's: daughter A keeps the mother's viscosity and all her outgoing strength (share 1),
  daughter B starts fluid with outgoing strength 0 — one engine edit, so parameters, Adam
  moments and tissue fields move together and the split itself forgets nothing. Events are
  logged in ``morpho grow``'s schema (``rule: task-change``), with a train record of the
  loss every few steps in ``metrics.jsonl``, so ``morpho plot`` and ``morpho render --color
  task`` read these runs like any run.
* **Viscosity (metaplasticity).** Each cell carries ``tissue.viscosity`` ≥ 0 (0 = fluid);
  its bank rows move by ``1 / (1 + viscosity)`` of the optimizer's update, an edge by the
  larger scale of its two ends. During a task each cell accumulates its share of the loss
  decrease, the path integral ``Σ −g · Δθ`` of synaptic intelligence (Zenke et al. 2017),
  in ``tissue.usage``; at the task's end ``viscosity += consolidation · usage / max usage``
  (cascade-like metaplasticity, Benna & Fusi 2016). The scale multiplies the *update*, not
  the gradient: Adam divides a row's gradient by its own running magnitude, so a constant
  gradient scale would cancel out. Both fields are tissue fields, carried through every edit.
* **Routing.** With the task id (task-incremental), task ``j`` runs through the cells
  whose ``tissue.route`` ≤ ``j`` (``route`` = the task a fluid daughter was born for;
  daughter A inherits her mother's): edges and readouts of later cells are masked, as in
  Progressive Networks (Rusu et al. 2016). Without a task id every cell is used.
* **Sleep.** After each task the learner stores ``prototypes`` k-means centroids per class
  (averages of ≈ 25 inputs — no raw example is stored) and, in a sleep phase, rehearses the
  prototypes of every class seen so far for ``sleep_steps`` steps (viscosity on); awake,
  every batch of the next tasks is joined by as many prototypes (like experience replay,
  but of centroids). Digits only, and only without routing (with the task id, routing and
  separate heads do that job). The stored set is reported as ``prototypes`` per class.

Task boundaries are never read: growth follows the loss; the task index only tags daughters
(``tissue.task``, for movies) and names the routing of fluid daughters. The growth scheduler
(``morpho.growth``) is not used: its rules answer free energy during one task, while this
learner grows on a jump between tasks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.func import functional_call

from morpho.apply import split_unequal
from morpho.growth.dispatch import cell_stats, event_record
from morpho.growth.rule import Event
from morpho.network import EDGE_BANKS
from morpho.output import Output
from morpho.rundir import RunDir
from morpho.sims.continual import LearnConfig, Learner, task_loss
from morpho.sims.streams import Stream, StreamTask


@dataclass(frozen=True)
class MorphoCLConfig:
    """The parts of morpho's continual learner and their settings."""

    growth: bool = True  # task-change surprise → mitosis (neurogenesis)
    viscosity: bool = True  # consolidated cells lose plasticity
    routing: bool = True  # with a task id, task j uses only cells routed to tasks <= j
    sleep: bool = True  # rehearse stored class prototypes between tasks
    jump_nats: float = 0.2  # loss rise over its running mean that signals a new task (nats)
    jump_ratio: float = 2.0  # … and the factor over the running mean it must reach
    momentum: float = 0.9  # running means of the batch loss and the cells' surprise
    cooldown: int = 20  # steps between growth events
    cells_per_level: int = 1  # cells that divide in each level per growth event
    consolidation: float = 3.0  # viscosity added at a task's end to its most used cell
    prototypes: int = 5  # k-means prototypes stored per class for sleep
    sleep_steps: int = 16  # steps of a sleep phase (batches drawn from the prototypes)
    log_every: int = 5  # steps between train records in each run's metrics.jsonl


ABLATIONS = {
    "morpho": {},
    "morpho-no-growth": {"growth": False},
    "morpho-no-viscosity": {"viscosity": False},
    "morpho-no-routing": {"routing": False},
    "morpho-no-sleep": {"sleep": False},
}


class MorphoLearner(Learner):
    """See the module docstring."""

    def __init__(
        self, stream: Stream, cfg: LearnConfig, cl: MorphoCLConfig, run: RunDir | None = None
    ) -> None:
        super().__init__(stream, cfg)
        self.cl, self.run = cl, run
        t = self.net.tissue
        t.viscosity = torch.zeros(t.num_nodes)
        t.usage = torch.zeros(t.num_nodes)
        t.route = torch.zeros(t.num_nodes, dtype=torch.long)
        self.adapter_viscosity = 0.0
        self.loss_ema: float | None = None
        self._jump = 0.0  # the latest batch loss minus its running mean (nats)
        self.last_growth = -(10**9)
        self.task = 0
        self.prototypes: list[tuple[Tensor, Tensor, Tensor]] = []
        self.asleep = False
        self.last_snapshot = -1
        self._out: Output | None = None  # the record of the latest training forward
        self._snapshot("start")

    @property
    def net(self):  # type: ignore[no-untyped-def]
        return self.model.net

    # ------------------------------------------------------------------ one step
    def begin_task(self, t: int, task: StreamTask) -> None:
        self.task = t

    def extra_batch(self) -> tuple[Tensor, Tensor, Tensor] | None:
        """Awake, each batch is joined by stored prototypes of earlier classes (with sleep on)."""
        if not (self.cl.sleep and self.prototypes) or self.asleep:
            return None
        x, y, h = (torch.cat(parts) for parts in zip(*self.prototypes, strict=True))
        idx = torch.randint(0, len(x), (self.cfg.batch_size,), generator=self.generator)
        return x[idx].to(self.device), y[idx].to(self.device), h[idx].to(self.device)

    def train_step(self, t: int, x: Tensor, y: Tensor, h: Tensor) -> Tensor:
        self.net.step = self.step
        loss = self.loss(t, x, y, h)
        if self.cl.growth and not self.asleep and self._task_changed():
            self.grow(t)
            loss = self.loss(t, x, y, h)
        self._update_surprise()
        self._log_metrics(t)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        before = {k: p.detach().clone() for k, p in self._viscous_params().items()}
        self.optimizer.step()
        self._apply_viscosity(before)
        self.step += 1
        return loss.detach()

    def loss(self, t: int, x: Tensor, y: Tensor, h: Tensor) -> Tensor:
        logits, self._out = self.predict_record(x, h)
        self._ce = task_loss(self.model.kind, logits, x, y)
        return self._ce + self.cfg.aux_weight * self._out.aux_loss

    def predict(self, x: Tensor, head: Tensor) -> Tensor:
        return self.predict_record(x, head)[0]

    def predict_record(self, x: Tensor, head: Tensor) -> tuple[Tensor, Output]:
        """Logits and the forward record; with routing and a task id, only the cells routed
        to that task run."""
        if not (self.cl.routing and self.stream.task_id_given):
            return self.model(x, head, with_record=True)
        task = int(head[0])
        visible = (self.net.tissue.route <= task).float().to(self.device)  # (N,)
        if bool(visible.all()):
            return self.model(x, head, with_record=True)
        src = self.net.tissue.edge_index[0].to(self.device)
        banks = self.net.banks
        masked = {
            "net.banks.strength": banks["strength"] * visible[src],
            "net.banks.readout": banks["readout"] * visible,
        }
        return functional_call(self.model, masked, (x, head), {"with_record": True})

    # ---------------------------------------------------------------- neurogenesis
    def _task_changed(self) -> bool:
        ce = float(self._ce.detach())
        if self.loss_ema is None:
            self.loss_ema = ce
            return False
        jump = self._jump = ce - self.loss_ema
        changed = (
            self.step - self.last_growth >= self.cl.cooldown
            and jump > self.cl.jump_nats
            and ce > self.cl.jump_ratio * self.loss_ema
        )
        m = self.cl.momentum
        self.loss_ema = ce if changed else m * self.loss_ema + (1 - m) * ce
        return changed

    def _update_surprise(self) -> None:
        t, m = self.net.tissue, self.cl.momentum
        assert self._out is not None
        s = self._out.stats["surprise"].detach().cpu()
        t.surprise_ema = torch.where(t.surprise_ema > 0, m * t.surprise_ema + (1 - m) * s, s)

    def grow(self, t: int) -> None:
        """Divide the most surprised cell(s) of each level; daughters B start fluid."""
        tissue = self.net.tissue
        assert self._out is not None
        surprise = self._out.stats["surprise"].detach().cpu()
        ratio = surprise / tissue.surprise_ema.clamp(min=1e-8)
        mothers = []
        for level in tissue.level.unique().tolist():
            rows = (tissue.level == level).nonzero()[:, 0]
            top = rows[ratio[rows].argsort(descending=True)[: self.cl.cells_per_level]]
            mothers += [(int(tissue.cell_id[r]), float(ratio[r])) for r in top]
        records = [self._divide(mother, score, t) for mother, score in mothers]
        self.last_growth = self.step
        snap = self._snapshot("growth", fresh=True, task=t)
        if self.run is not None and snap is not None:
            for record in records:
                self.run.log_event({**record, "snapshot": snap.name})

    def _divide(self, mother: int, score: float, t: int) -> dict[str, object]:
        """One asymmetric mitosis through the engine: daughter A keeps the mother's outputs
        and viscosity, B starts silent (share 0), fluid, unused and routed to task ``t``;
        parameters, optimizer moments and tissue fields move together. Returns the event's
        ``events.jsonl`` record (the growth schema of ``morpho grow``)."""
        before = {str(mother): cell_stats(self.net, mother)}
        fields = {"viscosity": 0.0, "usage": 0.0, "route": float(t)}
        edit = split_unequal(
            self.net, mother, optimizer=self.optimizer, share=1.0, task=t, fields=fields
        )
        stats = {"loss_jump": self._jump, "loss_ema": float(self.loss_ema or 0.0)}
        stats["surprise_ratio"] = score
        event = Event(
            "split",
            (mother,),
            score,
            f"task-change surprise: loss {self._jump:+.2f} nats over its mean",
            rule="task-change",
            stats=stats,
        )
        return {**event_record(self.net, event, edit, self.step, before, {}), "task": t}

    # ------------------------------------------------------------------ viscosity
    def _viscous_params(self) -> dict[str, Tensor]:
        """The cell banks and the input adapter (heads stay plastic)."""
        params = {f"banks.{k}": p for k, p in self.net.banks.items()}
        if self.model.kind == "classify":
            params.update({f"adapter.{k}": p for k, p in self.model.adapter.named_parameters()})
        return params

    def _row_scales(self) -> tuple[Tensor, Tensor]:
        """Per-cell and per-edge learning-rate scales ``1 / (1 + viscosity)``."""
        cell = 1.0 / (1.0 + self.net.tissue.viscosity.to(self.device))  # (N,)
        src, dst = self.net.tissue.edge_index.to(self.device)
        return cell, torch.maximum(cell[src], cell[dst])  # (N,), (E,)

    @torch.no_grad()
    def _apply_viscosity(self, before: dict[str, Tensor]) -> None:
        """Scale each row's update by its scale; accumulate each cell's SI usage."""
        cell, edge = self._row_scales()
        usage = torch.zeros_like(cell)
        dst = self.net.tissue.edge_index[1].to(self.device)
        for k, p in self._viscous_params().items():
            delta = p - before[k]
            if self.cl.viscosity:
                if k.startswith("banks."):
                    s = edge if k[6:] in EDGE_BANKS else cell
                    delta = delta * s.view(-1, *[1] * (p.dim() - 1))
                else:
                    delta = delta / (1.0 + self.adapter_viscosity)
                p.copy_(before[k] + delta)
            if p.grad is None or not k.startswith("banks."):
                continue
            gain = (-p.grad * delta).flatten(1).sum(1) if p.dim() > 1 else -p.grad * delta
            if k[6:] in EDGE_BANKS:
                usage.index_add_(0, dst, gain)
            else:
                usage += gain
        self.net.tissue.usage += usage.clamp(min=0).cpu()

    def end_task(self, t: int, task: StreamTask) -> None:
        tissue = self.net.tissue
        if self.cl.viscosity:
            share = tissue.usage / tissue.usage.max().clamp(min=1e-12)
            tissue.viscosity += self.cl.consolidation * share
            self.adapter_viscosity += self.cl.consolidation
        if (
            self.cl.sleep
            and self.stream.kind == "classify"
            and not (self.cl.routing and self.stream.task_id_given)
        ):
            self._store_prototypes(task)
            self._sleep(t)
        tissue.usage.zero_()
        self._snapshot("task_end", task=t)

    # ---------------------------------------------------------------------- sleep
    def _store_prototypes(self, task: StreamTask) -> None:
        """k-means centroids of each class's training inputs (averages, not raw examples)."""
        from sklearn.cluster import KMeans

        for c in task.classes:
            x = task.x_train[task.y_train == c]
            if not len(x):
                continue  # a class absent from a cut-down split (--max-train) has none
            k = min(self.cl.prototypes, len(x))
            km = KMeans(n_clusters=k, n_init=3, random_state=self.cfg.seed)
            km.fit(x.flatten(1).numpy())
            centers = torch.tensor(np.asarray(km.cluster_centers_), dtype=torch.float32)
            self.prototypes.append(
                (centers.view(k, *x.shape[1:]), torch.full((k,), c), torch.full((k,), task.head))
            )

    def _sleep(self, t: int) -> None:
        self.asleep = False
        batches = [self.extra_batch() for _ in range(self.cl.sleep_steps)]
        self.asleep = True
        for batch in batches:
            self.train_step(t, *batch)  # type: ignore[misc]
        self.asleep = False

    # ------------------------------------------------------------------ recording
    def _log_metrics(self, t: int) -> None:
        """A ``metrics.jsonl`` train record every ``log_every`` steps (loss in nats)."""
        if self.run is None or self.step % self.cl.log_every:
            return
        loss = float(self._ce.detach())
        self.run.log_metrics({"step": self.step, "kind": "train", "loss": loss, "task": t})

    def _snapshot(self, kind: str, fresh: bool = False, **meta: object) -> Path | None:
        """A movie frame, named by step (bumped by one when two events share a step), with
        the latest forward's statistics unless the topology is ``fresh`` from an edit."""
        if self.run is None:
            return None
        self.last_snapshot = max(self.step, self.last_snapshot + 1)
        return self.run.save_snapshot(
            self.net.snapshot(None if self._out is None or fresh else self._out.stats),
            self.last_snapshot,
            {"kind": kind, "train_step": self.step, **meta},
        )
