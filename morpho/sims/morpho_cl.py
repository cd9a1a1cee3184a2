"""morpho's continual learners: their settings and method names, and the gradient learner.

On image streams the ``analytic`` method (:class:`morpho.sims.analytic.AnalyticLearner`)
is a closed-form ridge head over an untrained reservoir, as in ACIL (Zhuang et al. 2022)
and RanPAC (McDonnell et al. 2023): the tissue is left as it was born, every cell at every
input position is read, and the heads are solved from running sums of those cell states.
``analytic-no-cell-readout`` solves the same heads over the pooled readout (``d_cell``
numbers) instead; ``random-features`` (a random ReLU layer over the raw pixels, the same
head) is its control.

``morpho-gradient`` is the gradient learner of this module (:class:`MorphoLearner`),
the path language streams always take:
neurogenesis on task-change surprise, viscous old cells with a floor on plasticity, task
routing, generative sleep in the tissue's feature space, distillation of old outputs and an
exemplar-free correction of the head's bias. Each of its parts is switchable
(``--methods morpho-gradient-no-growth``, ``-no-viscosity``, ``-no-floor``, ``-no-routing``,
``-no-sleep``, ``-no-distill``, ``-no-head-correction``, every one of them a gradient
learner):

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
* **Metaplasticity (viscosity).** Each cell carries ``tissue.viscosity`` ≥ 0 (0 = fluid);
  its bank rows move by ``max(1 / (1 + viscosity), plasticity_floor)`` of the optimizer's
  update, an edge by the larger scale of its two ends, the input adapter likewise. During a
  task each cell accumulates its share of the loss decrease, the path integral
  ``Σ −g · Δθ`` of synaptic intelligence (Zenke et al. 2017), in ``tissue.usage``; at the
  task's end ``viscosity += consolidation · usage / max usage`` (cascade-like
  metaplasticity, Benna & Fusi 2016). The floor keeps every row learning: without it the
  adapter moved at 1/13 of its rate by the fifth task. The scale multiplies the *update*,
  not the gradient: Adam divides a row's gradient by its own running magnitude.
* **Routing.** With the task id (task-incremental), task ``j`` runs through the cells
  whose ``tissue.route`` ≤ ``j`` (``route`` = the task a fluid daughter was born for;
  daughter A inherits her mother's): edges and readouts of later cells are masked, as in
  Progressive Networks (Rusu et al. 2016). Without a task id every cell is used.
* **Generative sleep.** No raw example and no pixel prototype is stored: at a task's end
  the learner fits one Gaussian per class to the heads' input features (the normalised
  readout state, ``d_cell`` numbers; mean and shrunk covariance, ``d + d(d+1)/2`` floats a
  class). In later tasks ``rehearsal_share`` of every batch is drawn from these Gaussians
  and passed through the heads (generative feature replay: Liu et al. 2020; FeTrIL, Petit
  et al. 2023); a sleep phase of ``sleep_steps`` steps, taken from the task's budget,
  trains the heads on a class-balanced draw of every class seen. Without a task id only.
* **Distillation.** The model as it was at the task's start answers each new batch; its
  outputs on the old classes are distilled into the learner (LwF, Li & Hoiem 2017) and the
  squared drift of its features is penalised (``feature_distill``), which keeps the
  features that the stored Gaussians describe from moving. Without a task id.
* **Head correction.** Weight aligning (Zhao et al. 2020, "Maintaining discrimination and
  fairness in class incremental learning"): after each class-incremental task, the head rows
  of the new classes are rescaled so their mean norm equals the old classes'; their
  optimizer moments are rescaled with them (:mod:`morpho.surgery`). Uses no example.

Task boundaries are never read by growth: it follows the loss; the task index only tags
daughters (``tissue.task``, for movies) and names the routing of fluid daughters. Sleep,
distillation and head correction act at the task's end, as every baseline's end-of-task
hook does.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from morpho.apply import split_unequal
from morpho.cells import rms_norm
from morpho.growth.dispatch import cell_stats, event_record
from morpho.growth.rule import Event
from morpho.network import EDGE_BANKS
from morpho.output import Output
from morpho.rundir import RunDir
from morpho.sims.continual import LearnConfig, Learner, StreamModel, distill, task_loss
from morpho.sims.streams import Stream, StreamTask
from morpho.surgery import RowMap, migrate_optimizer_state, remap_parameter, remap_rows


@dataclass(frozen=True)
class MorphoCLConfig:
    """The parts of morpho's continual learner and their settings."""

    analytic: bool = True  # closed-form heads over the cells' own states (set by the method)
    cell_readout: bool = True  # analytic: every cell at every position read (else pooled)
    ridge: float = 1e-4  # analytic: ridge, relative to the mean of the Gram's diagonal
    expand: int = 0  # analytic: width of a fixed random ReLU expansion (0: none)
    growth: bool = True  # task-change surprise → mitosis (neurogenesis)
    viscosity: bool = True  # consolidated cells lose plasticity, down to the floor
    routing: bool = True  # with a task id, task j uses only cells routed to tasks <= j
    sleep: bool = True  # generative sleep on class-conditional Gaussians of the features
    distill: bool = True  # distil the task-start model's old-class outputs on new inputs
    head_correction: bool = True  # weight aligning of new against old class rows
    jump_nats: float = 0.2  # loss rise over its running mean that signals a new task (nats)
    jump_ratio: float = 2.0  # … and the factor over the running mean it must reach
    momentum: float = 0.9  # running means of the batch loss and the cells' surprise
    cooldown: int = 20  # steps between growth events
    cells_per_level: int = 1  # cells that divide in each level per growth event
    consolidation: float = 3.0  # viscosity added at a task's end to its most used cell
    plasticity_floor: float = 0.25  # least share of the optimizer's update a row keeps
    sleep_steps: int = 4  # steps of a sleep phase, taken from the task's step budget
    shrinkage: float = 0.1  # covariance shrinkage towards its diagonal
    distill_alpha: float = 1.0  # weight of the distillation term
    distill_temperature: float = 2.0  # its softmax temperature
    feature_distill: float = 0.1  # weight of the features' squared drift on new inputs
    log_every: int = 5  # steps between train records in each run's metrics.jsonl

    def __post_init__(self) -> None:
        if not (math.isfinite(self.ridge) and self.ridge > 0) or self.expand < 0:
            raise ValueError(
                f"expected morpho.ridge > 0 (finite) and morpho.expand >= 0; got "
                f"{self.ridge}, {self.expand}"
            )


GRADIENT = {"analytic": False}
ABLATIONS: dict[str, dict[str, Any]] = {
    "analytic": {"analytic": True},
    "analytic-no-cell-readout": {"analytic": True, "cell_readout": False},
    "morpho-gradient": GRADIENT,
    "morpho-gradient-no-growth": {**GRADIENT, "growth": False},
    "morpho-gradient-no-viscosity": {**GRADIENT, "viscosity": False},
    "morpho-gradient-no-floor": {**GRADIENT, "plasticity_floor": 0.0},
    "morpho-gradient-no-routing": {**GRADIENT, "routing": False},
    "morpho-gradient-no-sleep": {**GRADIENT, "sleep": False},
    "morpho-gradient-no-distill": {**GRADIENT, "distill": False},
    "morpho-gradient-no-head-correction": {**GRADIENT, "head_correction": False},
}


MAX_ANALYTIC_FEATURES = 8192  # a Gram of 8192² float64 numbers is 0.5 GB


def analytic_dim(stream: Stream, learn: LearnConfig, cl: MorphoCLConfig) -> int:
    """Width of the analytic heads' input on ``stream``: every seed cell at every input row
    (``cells × rows × d_cell``), the pooled ``d_cell``, or the expansion's width.

    Raises:
        ValueError: more than :data:`MAX_ANALYTIC_FEATURES` features, naming the way out.
    """
    if cl.expand:
        dim = cl.expand
    elif not cl.cell_readout:
        dim = learn.d_cell
    else:
        dim = sum(learn.level_sizes) * stream.input_shape[0] * learn.d_cell
    if dim > MAX_ANALYTIC_FEATURES:
        raise ValueError(
            f"morpho's analytic heads would read {dim} features (a {dim}×{dim} Gram); "
            f"expected at most {MAX_ANALYTIC_FEATURES}: set [morpho] expand (e.g. 4096) "
            "or use fewer cells or channels"
        )
    return dim


def parent_method(name: str) -> str:
    """The method an ablation removes one part from (whose tuned point it takes)."""
    return "morpho-gradient" if ABLATIONS[name].get("analytic") is False else "analytic"


@dataclass(frozen=True)
class ClassGaussian:
    """One class's Gaussian over the heads' input features (no example is kept).

    Shapes:
        mean: (d,); chol: (d, d) lower Cholesky factor of the shrunk covariance.
    """

    mean: Tensor
    chol: Tensor
    label: int
    head: int

    def floats(self) -> int:
        """Stored floats: the mean and the covariance's lower triangle."""
        d = self.mean.numel()
        return d + d * (d + 1) // 2


def fit_gaussian(features: Tensor, shrinkage: float) -> tuple[Tensor, Tensor]:
    """Mean (d,) and lower Cholesky factor (d, d) of ``features`` (n, d), the covariance
    shrunk by ``shrinkage`` towards its diagonal (Ledoit & Wolf 2004) plus a small ridge."""
    mean = features.mean(0)
    d = features.shape[1]
    if len(features) < 2:
        return mean, 0.1 * torch.eye(d)
    centred = features - mean
    cov = centred.T @ centred / (len(features) - 1)
    cov = (1 - shrinkage) * cov + shrinkage * torch.diag(torch.diag(cov))
    return mean, torch.linalg.cholesky(cov + 1e-4 * torch.eye(d))


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
        self.gaussians: list[ClassGaussian] = []
        self.old: StreamModel | None = None  # the model at the task's start (distillation)
        self.old_classes: list[int] = []
        self.sleep_budget = 0
        self.last_snapshot = -1
        self._out: Output | None = None  # the record of the latest training forward
        self._snapshot("start")

    @property
    def net(self):  # type: ignore[no-untyped-def]
        return self.model.net

    @property
    def routed(self) -> bool:
        """Routing applies: it is on and the stream gives the task id."""
        return self.cl.routing and self.stream.task_id_given

    @property
    def dreams(self) -> bool:
        """Generative sleep applies: on, digits, and no task id (routing isolates then)."""
        return self.cl.sleep and self.stream.kind == "classify" and not self.routed

    # ------------------------------------------------------------------ one step
    def begin_task(self, t: int, task: StreamTask) -> None:
        self.task = t
        if not (self.cl.distill and t > 0 and self.stream.kind == "classify" and not self.routed):
            return
        self.old = copy.deepcopy(self.model).eval()
        for p in self.old.parameters():
            p.requires_grad_(False)
        self.old_classes = sorted({c for k in self.stream.tasks[:t] for c in k.classes})

    def reserved_steps(self, t: int, task: StreamTask) -> int:
        """The sleep phase's steps (at most a quarter of the task's budget)."""
        self.sleep_budget = min(self.cl.sleep_steps, self.task_steps(task) // 4)
        return self.sleep_budget if self.dreams else 0

    def rehearsed(self) -> int:
        return round(self.cfg.rehearsal_share * self.cfg.batch_size) if self._dreaming() else 0

    def _dreaming(self) -> bool:
        return self.dreams and bool(self.gaussians)

    def train_step(self, t: int, x: Tensor, y: Tensor, h: Tensor) -> Tensor:
        self.net.step = self.step
        loss = self.loss(t, x, y, h)
        if self.cl.growth and self._task_changed():
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
        """Cross-entropy on the new batch (``self._ce``, which growth watches) and, once
        there are Gaussians, on dreamt features filling the batch; plus distillation."""
        if self.stream.kind != "classify" or self.routed:
            logits, self._out = self.predict_record(x, h)
            self._ce = task_loss(self.model.kind, logits, x, y)
            return self._ce + self.cfg.aux_weight * self._out.aux_loss
        features, self._out = self.model.features(x)
        every = self.model.head_logits(features)  # (B, H, C)
        self._ce = F.cross_entropy(every[torch.arange(len(x)), h], y)
        ce = self._ce
        n_dream = self.cfg.batch_size - len(x) if self._dreaming() else 0
        if n_dream > 0:
            ce = (len(x) * ce + n_dream * self._dream_loss(n_dream)) / (len(x) + n_dream)
        loss = ce + self.cfg.aux_weight * self._out.aux_loss
        if self.old is not None:
            with torch.no_grad():
                old_features = self.old.features(x)[0]
                old = self.old.head_logits(old_features)
            pick = self.old_classes if self.stream.scenario == "class" else slice(None)
            loss = loss + self.cl.distill_alpha * distill(
                old[:, 0, pick], every[:, 0, pick], self.cl.distill_temperature
            )
            drift = (features - old_features).pow(2).sum(-1).mean()
            loss = loss + self.cl.feature_distill * drift
        return loss

    def predict(self, x: Tensor, head: Tensor) -> Tensor:
        return self.predict_record(x, head)[0]

    def predict_record(self, x: Tensor, head: Tensor) -> tuple[Tensor, Output]:
        """Logits and the forward record; with routing and a task id, only the cells routed
        to that task run."""
        if not self.routed:
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

    def _row_scales(self) -> tuple[Tensor, Tensor, float]:
        """Per-cell, per-edge and adapter shares of the update, ``1 / (1 + viscosity)``
        each, never below ``plasticity_floor``."""
        floor = self.cl.plasticity_floor
        cell = (1.0 / (1.0 + self.net.tissue.viscosity.to(self.device))).clamp(min=floor)
        src, dst = self.net.tissue.edge_index.to(self.device)
        adapter = max(1.0 / (1.0 + self.adapter_viscosity), floor)
        return cell, torch.maximum(cell[src], cell[dst]), adapter  # (N,), (E,), ()

    @torch.no_grad()
    def _apply_viscosity(self, before: dict[str, Tensor]) -> None:
        """Scale each row's update by its share; accumulate each cell's SI usage."""
        cell, edge, adapter = self._row_scales()
        usage = torch.zeros_like(cell)
        dst = self.net.tissue.edge_index[1].to(self.device)
        for k, p in self._viscous_params().items():
            delta = p - before[k]
            if self.cl.viscosity:
                if k.startswith("banks."):
                    s = edge if k[6:] in EDGE_BANKS else cell
                    delta = delta * s.view(-1, *[1] * (p.dim() - 1))
                else:
                    delta = delta * adapter
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
        if self.dreams:
            self._store_gaussians(task)
            self._sleep(t)
        if self.cl.head_correction and self.stream.scenario == "class" and t > 0:
            self._align_head(t, task)
        tissue.usage.zero_()
        self.old = None
        self._snapshot("task_end", task=t)

    # ---------------------------------------------------------------------- sleep
    @torch.no_grad()
    def _store_gaussians(self, task: StreamTask) -> None:
        """One Gaussian per class of the task over its training inputs' features."""
        self.model.eval()
        feats = torch.cat(
            [self.model.features(x.to(self.device))[0] for x in task.x_train.split(256)]
        ).cpu()
        self.model.train()
        for c in task.classes:
            f = feats[task.y_train == c]
            if len(f):  # a class absent from a cut-down split (--max-train) has none
                mean, chol = fit_gaussian(f, self.cl.shrinkage)
                self.gaussians.append(ClassGaussian(mean, chol, c, task.head))

    def _dream(self, n: int) -> tuple[Tensor, Tensor, Tensor]:
        """``n`` features drawn class-balanced from the stored Gaussians, on the feature
        sphere the heads read: (n, d) features, (n,) labels, (n,) heads."""
        pick = torch.randint(0, len(self.gaussians), (n,), generator=self.generator)
        means = torch.stack([g.mean for g in self.gaussians])[pick]  # (n, d)
        chols = torch.stack([g.chol for g in self.gaussians])[pick]  # (n, d, d)
        z = torch.randn(means.shape, generator=self.generator)
        feats = rms_norm(means + torch.einsum("nij,nj->ni", chols, z))
        labels = torch.tensor([self.gaussians[i].label for i in pick.tolist()])
        heads = torch.tensor([self.gaussians[i].head for i in pick.tolist()])
        return feats.to(self.device), labels.to(self.device), heads.to(self.device)

    def _dream_loss(self, n: int) -> Tensor:
        feats, labels, heads = self._dream(n)
        logits = self.model.head_logits(feats)[torch.arange(n), heads]
        return F.cross_entropy(logits, labels)

    def _sleep(self, t: int) -> None:
        """``sleep_budget`` optimizer steps of the heads on dreamt features alone."""
        for _ in range(self.sleep_budget):
            loss = self._dream_loss(self.cfg.batch_size)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            if self.run is not None and self.step % self.cl.log_every == 0:
                record = {
                    "step": self.step,
                    "kind": "train",
                    "loss": float(loss.detach()),
                    "task": t,
                }
                self.run.log_metrics({**record, "sleep": True})
            self.step += 1

    # ------------------------------------------------------------- head correction
    @torch.no_grad()
    def _align_head(self, t: int, task: StreamTask) -> None:
        """Weight aligning: the new classes' head rows rescaled to the old rows' mean norm,
        their optimizer moments with them (one row map through the optimizer surgery)."""
        old_w = self.model.heads.weight
        new = torch.zeros(old_w.shape[0], dtype=torch.bool)
        new[list(task.classes)] = True
        seen = torch.zeros_like(new)
        seen[sorted({c for k in self.stream.tasks[:t] for c in k.classes})] = True
        norms = old_w.detach().norm(dim=1).cpu()
        gamma = float(norms[seen].mean() / norms[new].mean().clamp(min=1e-12))
        rmap = RowMap.build(torch.arange(len(new)), scale=torch.where(new, gamma, 1.0))
        w = nn.Parameter(remap_parameter(old_w.detach(), rmap))
        if old_w.grad is not None:
            w.grad = remap_rows(old_w.grad, rmap)
        migrate_optimizer_state(self.optimizer, old_w, w, rmap)
        self.model.heads.weight = w

    # ------------------------------------------------------------------- memory
    def memory_floats(self) -> int:
        return sum(g.floats() for g in self.gaussians)

    def state_floats(self) -> int:  # the task-start model, held during a task
        return sum(p.numel() for p in self.model.parameters()) if self.cl.distill else 0

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
