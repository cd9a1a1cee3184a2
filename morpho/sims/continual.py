"""Continual learners on a task stream: the model they share, naive fine-tuning and baselines.

Every learner trains the same backbone — a morpho :class:`~morpho.network.Network` with
growth off — for the same optimizer steps a task, each on ``batch_size`` examples (rehearsed
ones included), with the same optimizer, so a comparison isolates the method. Images enter
the tissue through a :class:`PixelAdapter` (an H × W image as T = H tokens of its pixel rows,
each projected to ``d_cell`` channels, plus a learned position embedding); the readout
state at the last position feeds a linear head per task (task-incremental) or one shared
head. Language windows use the network's own embedding and next-character head.

Baselines (names for ``--methods``):
    ``naive``    fine-tuning, the lower bound;
    ``ewc``      online elastic weight consolidation (Kirkpatrick et al. 2017; Schwarz et al.
                 2018), diagonal Fisher from squared mini-batch gradients as in Avalanche;
    ``si``       synaptic intelligence (Zenke, Poole & Ganguli 2017);
    ``lwf``      learning without forgetting (Li & Hoiem 2017), distilling the previous
                 model's outputs on the new task's inputs;
    ``replay``   experience replay from a memory of ``memory`` examples per class
                 (Chaudhry et al. 2019, "On tiny episodic memories"), filling
                 ``rehearsal_share`` of each batch;
    ``joint``    one network trained once on every task together (the upper bound;
                 Avalanche's JointTraining) for ``joint_steps`` a task (converged), so every
                 row of its matrix is the same model; ``joint-short`` for the stream's budget;
    ``separate`` one network per task, each narrower so that together they hold about the
                 backbone's parameters; without a task id the most confident one answers.

    learner = make_learner("ewc", stream, LearnConfig(seed=0))
    learner.fit_task(0, stream.tasks[0]); learner.score(stream.tasks[0])
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from morpho.cells import rms_norm
from morpho.network import Network, NetworkConfig
from morpho.output import Output
from morpho.sims.streams import Stream, StreamTask

LN2 = 0.6931471805599453


@dataclass(frozen=True)
class LearnConfig:
    """Training budget and the baselines' hyperparameters (the same for every method)."""

    epochs: int = 4  # passes over each task's training split (when ``steps`` is 0)
    steps: int = 0  # optimizer steps per task, the same for every method (0: ``epochs``)
    joint_steps: int = 500  # ``joint``: optimizer steps a task (the converged budget)
    batch_size: int = 32  # examples per step, rehearsed ones included, for every method
    rehearsal_share: float = 0.5  # share of a batch rehearsed once a method has a memory
    lr: float = 2e-3  # Adam learning rate (one optimizer for the whole stream)
    aux_weight: float = 0.1  # weight of the cells' local next-input prediction loss
    d_cell: int = 16  # channels per cell (≈ 27k parameters: the anchors' 2×100 MLP is ≈ 17k)
    level_sizes: tuple[int, ...] = (2, 3, 3, 2)  # seed cells per level (growth off for baselines)
    memory: int = 10  # replay: stored examples per class (language: windows per domain)
    ewc_lambda: float = 1000.0  # EWC penalty weight
    si_c: float = 1.0  # SI penalty weight
    si_xi: float = 0.1  # SI damping of the parameter change
    lwf_alpha: float = 1.0  # LwF distillation weight
    lwf_temperature: float = 2.0  # LwF softmax temperature
    device: str = "cpu"  # torch device
    seed: int = 0  # initialisation and batch order


class PixelAdapter(nn.Module):
    """(B, H, W) pixel rows → (B, H, d) tokens: a linear embedding plus a learned position."""

    def __init__(self, d: int, width: int = 8, length: int = 8) -> None:
        super().__init__()
        self.proj = nn.Linear(width, d)
        self.pos = nn.Parameter(torch.randn(length, d) * 0.1)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x) + self.pos  # (B, T, d)


class StreamModel(nn.Module):
    """Backbone network plus the stream's input adapter and heads."""

    def __init__(self, stream: Stream, net_cfg: NetworkConfig) -> None:
        super().__init__()
        self.kind = stream.kind
        self.n_heads, self.head_size = stream.n_heads, stream.head_size
        self.net = Network(net_cfg)
        if self.kind == "classify":
            d = net_cfg.d_cell
            length, width = stream.input_shape  # rows of pixels
            self.adapter = PixelAdapter(d, width=width, length=length)
            self.heads = nn.Linear(d, self.n_heads * self.head_size)

    @staticmethod
    def net_config(stream: Stream, cfg: LearnConfig, d_cell: int | None = None) -> NetworkConfig:
        vocab = stream.head_size if stream.kind == "lm" else 2  # digits: embedding unused
        return NetworkConfig(
            vocab_size=vocab,
            d_cell=d_cell or cfg.d_cell,
            level_sizes=cfg.level_sizes,
            seed=cfg.seed,
        )

    def forward_all(self, x: Tensor) -> Tensor:
        """Every head's logits: (B, H, C) for digits; (B, T, V) next-character logits for text."""
        return self.run_all(x)[0]

    def run_all(self, x: Tensor) -> tuple[Tensor, Output]:
        """:meth:`forward_all` and the network's forward record (aux loss, statistics)."""
        if self.kind == "lm":
            out = self.net.run(x[:, :-1])
            assert out.logits is not None
            return out.logits, out
        features, out = self.features(x)
        return self.head_logits(features), out

    def features(self, x: Tensor) -> tuple[Tensor, Output]:
        """Digits: the heads' input, the normalised readout state at the last position
        (B, d), and the network's forward record."""
        out = self.net.run_tissue(self.adapter(x))
        return rms_norm(out.state[:, -1]), out

    def head_logits(self, features: Tensor) -> Tensor:
        """(B, d) features → every head's logits (B, H, C)."""
        return self.heads(features).view(len(features), self.n_heads, self.head_size)

    def forward(
        self, x: Tensor, head: Tensor, with_record: bool = False
    ) -> Tensor | tuple[Tensor, Output]:
        """Logits of each example's own head: (B, C) (text: (B, T, V), ``head`` ignored);
        with ``with_record``, also the network's forward record."""
        logits, out = self.run_all(x)
        if self.kind != "lm":
            logits = logits[torch.arange(len(x)), head]
        return (logits, out) if with_record else logits

    def n_params(self) -> int:
        """Parameters in use (a digit model leaves the network's token embedding unused)."""
        unused = {"net.embed", "net.head", "net.head_norm"} if self.kind == "classify" else set()
        return sum(p.numel() for n, p in self.named_parameters() if n not in unused)


def task_loss(kind: str, logits: Tensor, x: Tensor, y: Tensor) -> Tensor:
    """Cross-entropy of class logits against ``y``, or of next-character logits against ``x``."""
    if kind == "lm":
        return F.cross_entropy(logits.flatten(0, 1), x[:, 1:].flatten())
    return F.cross_entropy(logits, y)


def distill(old: Tensor, new: Tensor, temperature: float) -> Tensor:
    """KL(softmax(old / τ) ‖ softmax(new / τ)) · τ² over the last dimension (Hinton et al. 2015)."""
    p_old = F.softmax(old / temperature, -1)
    kl = p_old * (F.log_softmax(old / temperature, -1) - F.log_softmax(new / temperature, -1))
    return kl.sum(-1).mean() * temperature**2


class Learner:
    """Naive fine-tuning; the base that the other methods override at a few hooks.

    Hooks: :meth:`begin_task`, :meth:`loss` (add a penalty), :meth:`extra_batch` (replay,
    with :meth:`rehearsed`), :meth:`after_update`, :meth:`end_task` (with
    :meth:`reserved_steps` when it trains). Every method takes :meth:`task_steps` optimizer
    steps of ``batch_size`` examples per task.
    """

    def __init__(self, stream: Stream, cfg: LearnConfig) -> None:
        self.stream, self.cfg = stream, cfg
        self.device = torch.device(cfg.device)
        torch.manual_seed(cfg.seed)
        self.model = StreamModel(stream, StreamModel.net_config(stream, cfg)).to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.step = 0

    # ------------------------------------------------------------------ training
    def task_steps(self, task: StreamTask) -> int:
        """Optimizer steps a task gets: ``cfg.steps``, or ``cfg.epochs`` passes over its
        training split in batches of ``cfg.batch_size`` (the same for every method)."""
        n_batches = len(range(0, len(task.x_train) - 1, self.cfg.batch_size))
        return self.cfg.steps or self.cfg.epochs * n_batches

    def reserved_steps(self, t: int, task: StreamTask) -> int:
        """Steps of the task's budget that :meth:`end_task` takes (a sleep phase); 0 here."""
        return 0

    def rehearsed(self) -> int:
        """Examples of each batch :meth:`extra_batch` supplies (0: none, a plain batch)."""
        return 0

    def fit_task(self, t: int, task: StreamTask) -> None:
        """``task_steps`` optimizer steps, each on ``batch_size`` examples: new ones and, for
        a rehearsing method, ``rehearsed()`` from its memory; ``end_task`` takes the rest."""
        self.begin_task(t, task)
        awake = self.task_steps(task) - self.reserved_steps(t, task)
        size = self.cfg.batch_size - self.rehearsed()
        for x, y, h in self.batches(task.x_train, task.y_train, task.head, steps=awake, size=size):
            extra = self.extra_batch(self.cfg.batch_size - len(x))
            if extra is not None:
                x, y, h = (torch.cat([a, b]) for a, b in zip((x, y, h), extra, strict=True))
            self.train_step(t, x, y, h)
        self.end_task(t, task)

    def batches(
        self,
        x: Tensor,
        y: Tensor,
        head: Tensor | int,
        epochs: int | None = None,
        steps: int | None = None,
        size: int | None = None,
    ) -> Iterator[tuple[Tensor, ...]]:
        """Shuffled mini-batches ``(x, y, head)`` of ``size`` (default ``cfg.batch_size``) on
        the device: ``epochs`` passes (default ``cfg.epochs``), or exactly ``steps`` batches
        over as many passes as they need; ``head`` is one head for all examples or (n,)."""
        n, bs = len(x), size or self.cfg.batch_size
        heads = torch.full((n,), head) if isinstance(head, int) else head
        passes = self.cfg.epochs if epochs is None else epochs
        done, epoch = 0, 0
        while (epoch < passes) if steps is None else (done < steps):
            order = torch.randperm(n, generator=self.generator)
            for i in range(0, n - 1, bs):
                if steps is not None and done == steps:
                    return
                idx = order[i : i + bs]
                done += 1
                yield tuple(a[idx].to(self.device) for a in (x, y, heads))
            epoch += 1

    def train_step(self, t: int, x: Tensor, y: Tensor, h: Tensor) -> Tensor:
        self.model.net.step = self.step
        loss = self.loss(t, x, y, h)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.after_update()
        self.step += 1
        return loss.detach()

    def loss(self, t: int, x: Tensor, y: Tensor, h: Tensor) -> Tensor:
        logits, out = self.model(x, h, with_record=True)
        ce = task_loss(self.model.kind, logits, x, y)
        return ce + self.cfg.aux_weight * out.aux_loss

    def begin_task(self, t: int, task: StreamTask) -> None: ...

    def extra_batch(self, n: int) -> tuple[Tensor, Tensor, Tensor] | None:
        """``n`` rehearsed examples ``(x, y, head)`` to join the batch (None: none)."""
        return None

    def after_update(self) -> None: ...

    def end_task(self, t: int, task: StreamTask) -> None: ...

    # ---------------------------------------------------------------- evaluation
    def predict(self, x: Tensor, head: Tensor) -> Tensor:
        return self.model(x, head)

    @torch.no_grad()
    def score(self, task: StreamTask, batch: int = 256) -> float:
        """Test accuracy in % (digits) or bits per character (text) on ``task``."""
        self.model.eval()
        total, n = 0.0, 0
        for i in range(0, len(task.x_test), batch):
            x = task.x_test[i : i + batch].to(self.device)
            y = task.y_test[i : i + batch].to(self.device)
            logits = self.predict(x, torch.full((len(x),), task.head, device=self.device))
            if self.stream.kind == "lm":
                total += float(task_loss("lm", logits, x, y)) * len(x)
            else:
                total += float((logits.argmax(-1) == y).sum())
            n += len(x)
        self.model.train()
        return total / n / LN2 if self.stream.kind == "lm" else 100.0 * total / n

    def n_params(self) -> int:
        return self.model.n_params()

    def n_cells(self) -> int:
        return int(self.model.net.tissue.num_nodes)

    def memory_floats(self) -> int:
        """Floats of stored data or data statistics (replay's examples, morpho's Gaussians):
        the memory that replay at equal floats equalises."""
        return 0

    def state_floats(self) -> int:
        """Other floats kept besides the model that answers (old models, importances)."""
        return 0


# ----------------------------------------------------------------- regularisers
class EWC(Learner):
    """Online EWC: ``λ/2 Σ F_i (θ_i − θ*_i)²`` with the Fisher summed over past tasks."""

    def __init__(self, stream: Stream, cfg: LearnConfig) -> None:
        super().__init__(stream, cfg)
        self.fisher: dict[str, Tensor] = {}
        self.anchor: dict[str, Tensor] = {}

    def loss(self, t: int, x: Tensor, y: Tensor, h: Tensor) -> Tensor:
        loss = super().loss(t, x, y, h)
        if not self.fisher:
            return loss
        params = dict(self.model.named_parameters())
        penalty = sum(
            (f * (params[k] - self.anchor[k]).pow(2)).sum() for k, f in self.fisher.items()
        )
        return loss + 0.5 * self.cfg.ewc_lambda * penalty

    def end_task(self, t: int, task: StreamTask) -> None:
        fisher = {k: torch.zeros_like(p) for k, p in self.model.named_parameters()}
        n = 0
        for x, y, h in self.batches(task.x_train, task.y_train, task.head, epochs=1):
            self.model.zero_grad(set_to_none=True)
            task_loss(self.model.kind, self.model(x, h), x, y).backward()
            for k, p in self.model.named_parameters():
                if p.grad is not None:
                    fisher[k] += p.grad.detach().pow(2)
            n += 1
        self.model.zero_grad(set_to_none=True)
        for k, f in fisher.items():
            self.fisher[k] = self.fisher.get(k, 0) + f / max(n, 1)
        self.anchor = {k: p.detach().clone() for k, p in self.model.named_parameters()}

    def state_floats(self) -> int:
        return sum(f.numel() for f in self.fisher.values()) + sum(
            a.numel() for a in self.anchor.values()
        )


class SI(Learner):
    """Synaptic intelligence: importance = path integral of ``−g · Δθ`` over a task,
    normalised by ``(Δθ_task)² + ξ``; penalty ``c Σ Ω_i (θ_i − θ*_i)²``."""

    def __init__(self, stream: Stream, cfg: LearnConfig) -> None:
        super().__init__(stream, cfg)
        self.omega: dict[str, Tensor] = {}
        self.anchor = self._params()
        self.path = {k: torch.zeros_like(p) for k, p in self.anchor.items()}
        self.before = self._params()

    def _params(self) -> dict[str, Tensor]:
        return {k: p.detach().clone() for k, p in self.model.named_parameters()}

    def loss(self, t: int, x: Tensor, y: Tensor, h: Tensor) -> Tensor:
        loss = super().loss(t, x, y, h)
        self.before = self._params()
        if not self.omega:
            return loss
        params = dict(self.model.named_parameters())
        penalty = sum(
            (w * (params[k] - self.anchor[k]).pow(2)).sum() for k, w in self.omega.items()
        )
        return loss + self.cfg.si_c * penalty

    def after_update(self) -> None:
        for k, p in self.model.named_parameters():
            if p.grad is not None:
                self.path[k] -= p.grad.detach() * (p.detach() - self.before[k])

    def end_task(self, t: int, task: StreamTask) -> None:
        now = self._params()
        for k, p in now.items():
            delta = (p - self.anchor[k]).pow(2)
            importance = self.path[k].clamp(min=0) / (delta + self.cfg.si_xi)
            self.omega[k] = self.omega.get(k, 0) + importance
            self.path[k].zero_()
        self.anchor = now

    def state_floats(self) -> int:  # importances, anchor and path integral
        return sum(w.numel() for w in self.omega.values()) + 2 * sum(
            a.numel() for a in self.anchor.values()
        )


class LwF(Learner):
    """Learning without forgetting: distil the previous model's old outputs on new inputs."""

    def __init__(self, stream: Stream, cfg: LearnConfig) -> None:
        super().__init__(stream, cfg)
        self.old: StreamModel | None = None
        self.old_classes: list[int] = []

    def begin_task(self, t: int, task: StreamTask) -> None:
        if t > 0:
            self.old = copy.deepcopy(self.model).eval()
            self.old_classes = sorted({c for k in self.stream.tasks[:t] for c in k.classes})

    def loss(self, t: int, x: Tensor, y: Tensor, h: Tensor) -> Tensor:
        loss = super().loss(t, x, y, h)
        if self.old is None:
            return loss
        with torch.no_grad():
            old = self.old.forward_all(x)
        new = self.model.forward_all(x)
        if self.model.kind == "classify":
            if self.stream.scenario == "task":
                old, new = old[:, :t], new[:, :t]  # the heads of past tasks
            elif self.stream.scenario == "class":
                old, new = old[:, 0, self.old_classes], new[:, 0, self.old_classes]
        return loss + self.cfg.lwf_alpha * distill(old, new, self.cfg.lwf_temperature)

    def state_floats(self) -> int:  # the previous model
        return 0 if self.old is None else sum(p.numel() for p in self.old.parameters())


# ------------------------------------------------------------ rehearsal, bounds
class Replay(Learner):
    """Experience replay: once the class-balanced memory of ``memory`` examples per class of
    the tasks seen so far holds any, ``rehearsal_share`` of every batch is drawn from it."""

    def __init__(self, stream: Stream, cfg: LearnConfig) -> None:
        super().__init__(stream, cfg)
        self.memory: list[tuple[Tensor, Tensor, Tensor]] = []

    def rehearsed(self) -> int:
        return round(self.cfg.rehearsal_share * self.cfg.batch_size) if self.memory else 0

    def extra_batch(self, n: int) -> tuple[Tensor, Tensor, Tensor] | None:
        if not (self.memory and n):
            return None
        x, y, h = (torch.cat(parts) for parts in zip(*self.memory, strict=True))
        idx = torch.randint(0, len(x), (n,), generator=self.generator)
        return x[idx].to(self.device), y[idx].to(self.device), h[idx].to(self.device)

    def memory_floats(self) -> int:
        return sum(x.numel() for x, _, _ in self.memory)

    def end_task(self, t: int, task: StreamTask) -> None:
        lm = self.stream.kind == "lm"
        for c in task.classes:
            pool = torch.arange(len(task.x_train)) if lm else (task.y_train == c).nonzero()[:, 0]
            pick = pool[torch.randperm(len(pool), generator=self.generator)[: self.cfg.memory]]
            self.memory.append(
                (task.x_train[pick], task.y_train[pick], torch.full((len(pick),), task.head))
            )


class Joint(Learner):
    """Trained once on all tasks together, for the steps of the whole stream (called at the
    last task; earlier rows repeat it)."""

    def fit_task(self, t: int, task: StreamTask) -> None:
        if t < len(self.stream.tasks) - 1:
            return
        tasks = self.stream.tasks
        x, y = torch.cat([k.x_train for k in tasks]), torch.cat([k.y_train for k in tasks])
        heads = torch.cat([torch.full((len(k.x_train),), k.head) for k in tasks])
        steps = sum(self.task_steps(k) for k in tasks)  # the stream's whole budget
        for batch in self.batches(x, y, heads, steps=steps):
            self.train_step(t, *batch)


class Separate(Learner):
    """One narrower network per task, about the backbone's parameters in total.

    With the task id (task-incremental) task ``j`` is answered by network ``j``; without
    it, by the network whose softmax is most confident on the example. Language always
    uses the domain's network (an oracle task id). Networks of unseen tasks are not asked.
    """

    def __init__(self, stream: Stream, cfg: LearnConfig) -> None:
        super().__init__(stream, cfg)
        budget, n_tasks = self.model.n_params(), len(stream.tasks)
        d = cfg.d_cell
        while d > 2 and n_tasks * self._model(d, 0).n_params() > budget:
            d -= 2  # a multiple of the two attention heads
        self.models = nn.ModuleList(self._model(d, j) for j in range(n_tasks)).to(self.device)
        self.seen = 0

    def _model(self, d: int, j: int) -> StreamModel:
        cfg = replace(self.cfg, seed=self.cfg.seed + 97 * j)
        net_cfg = StreamModel.net_config(self.stream, cfg, d)
        return StreamModel(self.stream, net_cfg)

    def fit_task(self, t: int, task: StreamTask) -> None:
        self.model = self._nets()[t]
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.cfg.lr)
        super().fit_task(t, task)
        self.seen = t + 1

    def predict(self, x: Tensor, head: Tensor) -> Tensor:
        if self.stream.task_id_given or self.stream.kind == "lm":
            return self._nets()[min(self.scoring, max(self.seen - 1, 0))](x, head)
        outs = torch.stack([m(x, head) for m in self._nets()[: max(self.seen, 1)]])  # (M, B, C)
        best = F.softmax(outs, -1).amax(-1).argmax(0)  # (B,) the most confident network
        return outs[best, torch.arange(len(x))]

    def score(self, task: StreamTask, batch: int = 256) -> float:
        self.scoring = next(j for j, k in enumerate(self.stream.tasks) if k is task)
        self.models.eval()
        out = super().score(task, batch)
        self.models.train()
        return out

    def _nets(self) -> list[StreamModel]:
        return [cast(StreamModel, m) for m in self.models]

    def n_params(self) -> int:
        return sum(m.n_params() for m in self._nets())

    def n_cells(self) -> int:
        return sum(int(m.net.tissue.num_nodes) for m in self._nets())
