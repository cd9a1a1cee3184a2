"""Continual-learning methods as the one trainer's seams, through one registry.

A method is a :class:`CLMethod`: what it wraps the task stream in (replay), which loss
terms (:class:`morpho.terms.Term`) and callbacks it adds (EWC, SI, LwF), whether the growth
scheduler runs (neurogenesis is a growth rule, ``task_change``), and the grid ``--tune``
sweeps. ``morpho stream`` builds the :class:`~morpho.trainer.Trainer` of ``morpho grow``
from these parts; it has no loop, optimizer, logger or snapshot writer of its own. A third
party adds a method as it adds a rule, under the ``morpho.cl_methods`` entry-point group::

    CL_METHODS.register("mine", CLMethod("mine", terms=lambda ctx: [MyPenalty(ctx)]))

The boundaries between tasks are read from the step (``steps_per_task`` of the stream),
the same way the trainer tells the task its step: no method is told when a task begins.

Methods (``--methods``):
    ``naive``   fine-tuning, the lower bound;
    ``ewc``     online elastic weight consolidation (Kirkpatrick et al. 2017; Schwarz et al.
                2018), diagonal Fisher from squared mini-batch gradients as in Avalanche;
    ``si``      synaptic intelligence (Zenke, Poole & Ganguli 2017);
    ``lwf``     learning without forgetting (Li & Hoiem 2017), distilling the previous
                model's outputs on the new task's inputs;
    ``replay``  experience replay of ``memory`` examples a class (:class:`ReplayTask`);
    ``replay-floats``  replay with as many examples as the analytic learner keeps floats;
    ``joint``   every task at once for ``joint_steps`` a task (the converged upper bound);
    ``joint-short``  the same for the stream's own budget;
    ``neurogenesis``  naive fine-tuning with the growth scheduler on (``task_change`` among
                its rules: cells bud when surprise jumps).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor

from morpho.callbacks import Callback
from morpho.registry import Registry
from morpho.sims.stream_task import JointTask, ReplayTask
from morpho.terms import StepContext, Term

if TYPE_CHECKING:
    from morpho.edits import Edit
    from morpho.trainer import Trainer

LRS = (1e-3, 2e-3, 4e-3)


@dataclass(frozen=True)
class MethodContext:
    """What a method's parts are built from: the stream task, the ``[learn]`` settings
    (:class:`morpho.sims.stream_run.LearnConfig`), the seed and the equal-floats memory."""

    stream: Any  # a TaskStream
    learn: Any
    seed: int
    float_memory: int = 0  # replay-floats: examples a class in the analytic learner's floats


@dataclass(frozen=True)
class CLMethod:
    """One continual-learning method, as parts of the one trainer."""

    name: str
    wrap: Callable[[MethodContext], Any] | None = None  # the task the trainer sees
    parts: Callable[[MethodContext], list[Any]] | None = None  # terms and/or callbacks
    growth: bool = False  # run the growth scheduler ([growth] of the stream config)
    steps_per_task: Callable[[MethodContext], int] | None = None  # None: the stream's
    grid: dict[str, tuple[float, ...]] = field(default_factory=lambda: {"train.lr": LRS})
    closed_form: bool = False  # solved by the driver (analytic heads): no trainer at all
    at_once: bool = False  # trained on every task together: scored once, at the end


def boundary(step: int, ctx: MethodContext) -> int | None:
    """The task that just ended if ``step`` (optimizer steps done) closes one, else None."""
    spt, n = ctx.stream.steps_per_task, ctx.stream.n_tasks
    if step and step % spt == 0 and step // spt < n:
        return step // spt - 1
    return None


def named_params(net: torch.nn.Module) -> dict[str, Tensor]:
    return {k: p for k, p in net.named_parameters() if p.requires_grad}


class Consolidation(Term, Callback):
    """A quadratic anchor ``Σ w_i (θ_i − θ*_i)²`` whose weights are set at task ends.

    Both a loss term (the penalty) and a callback (the end-of-task update); a parameter whose
    shape an edit changed drops its weights (its consolidation starts again).
    """

    def __init__(self, ctx: MethodContext, strength: float) -> None:
        self.ctx, self.strength = ctx, strength
        self.weight: dict[str, Tensor] = {}
        self.anchor: dict[str, Tensor] = {}

    def loss(self, ctx: StepContext) -> Tensor | None:
        if not self.weight:
            return None
        params = named_params(ctx.net)
        terms = [(w * (params[k] - self.anchor[k]).pow(2)).sum() for k, w in self._live(params)]
        return self.strength * torch.stack(terms).sum() if terms else None

    def _live(self, params: dict[str, Tensor]) -> list[tuple[str, Tensor]]:
        return [(k, w) for k, w in self.weight.items() if k in params]

    def on_edit(self, trainer: Trainer, edit: Edit) -> None:
        params = named_params(trainer.net)
        for k in list(self.weight):
            if k not in params or params[k].shape != self.weight[k].shape:
                del self.weight[k], self.anchor[k]

    def floats(self) -> int:
        return sum(w.numel() for w in self.weight.values()) * 2


class EWC(Consolidation):
    """Online EWC: ``λ/2 Σ F_i (θ_i − θ*_i)²``, the Fisher summed over past tasks, each
    estimated from squared mini-batch gradients over the task's training split."""

    def __init__(self, ctx: MethodContext) -> None:
        super().__init__(ctx, 0.5 * ctx.learn.ewc_lambda)

    def on_step_end(self, trainer: Trainer, step: int, result: Any) -> None:
        t = boundary(step, self.ctx)
        if t is None:
            return
        params = named_params(trainer.net)
        fisher = {k: torch.zeros_like(p) for k, p in params.items()}
        batches = self.ctx.stream.task_batches(t, "train", trainer.cfg.batch_size)
        for x, y in batches:
            logits = trainer.net(x.to(trainer.device))
            ce = F.cross_entropy(logits.flatten(0, 1), y.to(trainer.device).flatten())
            grads = torch.autograd.grad(ce, list(params.values()), allow_unused=True)
            for k, g in zip(params, grads, strict=True):
                if g is not None:
                    fisher[k] += g.detach().pow(2) / len(batches)
        for k, f in fisher.items():
            old = self.weight.get(k)
            self.weight[k] = f if old is None or old.shape != f.shape else old + f
        self.anchor = {k: p.detach().clone() for k, p in params.items()}


class SI(Consolidation):
    """Synaptic intelligence: importance = the path integral of ``−g · Δθ`` over a task,
    normalised by ``(Δθ_task)² + ξ``; penalty ``c Σ Ω_i (θ_i − θ*_i)²``."""

    def __init__(self, ctx: MethodContext) -> None:
        super().__init__(ctx, ctx.learn.si_c)
        self.path: dict[str, Tensor] = {}
        self.before: dict[str, Tensor] = {}
        self.start: dict[str, Tensor] = {}

    def on_train_start(self, trainer: Trainer) -> None:
        self._reset(trainer)

    def _reset(self, trainer: Trainer) -> None:
        params = {k: p.detach().clone() for k, p in named_params(trainer.net).items()}
        self.before, self.start = params, dict(params)
        self.path = {k: torch.zeros_like(p) for k, p in params.items()}

    def on_step_end(self, trainer: Trainer, step: int, result: Any) -> None:
        params = named_params(trainer.net)
        for k, p in params.items():
            if p.grad is not None and k in self.path:
                self.path[k] -= p.grad.detach() * (p.detach() - self.before[k])
        self.before = {k: p.detach().clone() for k, p in params.items()}
        if boundary(step, self.ctx) is None:
            return
        xi = self.ctx.learn.si_xi
        for k, p in params.items():
            delta = (p.detach() - self.start[k]).pow(2)
            importance = self.path[k].clamp(min=0) / (delta + xi)
            old = self.weight.get(k)
            self.weight[k] = importance if old is None else old + importance
        self.anchor = {k: p.detach().clone() for k, p in params.items()}
        self._reset(trainer)

    def on_edit(self, trainer: Trainer, edit: Edit) -> None:
        super().on_edit(trainer, edit)
        self._reset(trainer)  # the path integral restarts on the new layout


def distill(old: Tensor, new: Tensor, temperature: float) -> Tensor:
    """KL(softmax(old / τ) ‖ softmax(new / τ)) · τ² over the last dimension (Hinton et al. 2015)."""
    p_old = F.softmax(old / temperature, -1)
    kl = p_old * (F.log_softmax(old / temperature, -1) - F.log_softmax(new / temperature, -1))
    return kl.sum(-1).mean() * temperature**2


class LwF(Term, Callback):
    """Learning without forgetting: the model as it was when the latest task ended answers
    each new batch; its outputs on the past tasks' columns are distilled into the learner."""

    def __init__(self, ctx: MethodContext) -> None:
        self.ctx = ctx
        self.old: torch.nn.Module | None = None
        self.columns: list[int] = []

    def on_step_end(self, trainer: Trainer, step: int, result: Any) -> None:
        t = boundary(step, self.ctx)
        if t is None:
            return
        self.old = copy.deepcopy(trainer.net).eval()
        for p in self.old.parameters():
            p.requires_grad_(False)
        stream = self.ctx.stream
        self.columns = sorted({c for j in range(t + 1) for c in stream.task_columns(j)})

    def loss(self, ctx: StepContext) -> Tensor | None:
        if self.old is None or ctx.output is None or ctx.output.logits is None:
            return None
        with torch.no_grad():
            old = self.old(ctx.batch[0])
        new = ctx.output.logits
        if self.ctx.stream.kind == "classify":
            old, new = old[..., self.columns], new[..., self.columns]
        learn = self.ctx.learn
        return learn.lwf_alpha * distill(old, new, learn.lwf_temperature)


def _replay(memory: Callable[[MethodContext], int]) -> Callable[[MethodContext], Any]:
    def wrap(ctx: MethodContext) -> Any:
        return ReplayTask(ctx.stream, memory(ctx), ctx.learn.rehearsal_share, ctx.seed)

    return wrap


CL_METHODS: Registry[CLMethod] = Registry("continual-learning method", "morpho.cl_methods")
for _m in (
    CLMethod("naive"),
    CLMethod("ewc", parts=lambda c: [EWC(c)], grid={"learn.ewc_lambda": (10.0, 100.0, 1e3, 1e4)}),
    CLMethod("si", parts=lambda c: [SI(c)], grid={"learn.si_c": (0.1, 1.0, 10.0)}),
    CLMethod("lwf", parts=lambda c: [LwF(c)], grid={"learn.lwf_alpha": (0.5, 1.0, 2.0, 4.0)}),
    CLMethod("replay", wrap=_replay(lambda c: c.learn.memory)),
    CLMethod("replay-floats", wrap=_replay(lambda c: c.float_memory)),
    CLMethod(
        "joint",
        wrap=lambda c: JointTask(c.stream),
        steps_per_task=lambda c: c.learn.joint_steps,
        at_once=True,
    ),
    CLMethod("joint-short", wrap=lambda c: JointTask(c.stream), at_once=True),
    CLMethod("neurogenesis", growth=True),
    CLMethod("analytic", closed_form=True, grid={"learn.ridge": (1e-2, 1e-3, 1e-4, 1e-5, 1e-6)}),
    CLMethod(
        "analytic-no-cell-readout",
        closed_form=True,
        grid={"learn.ridge": (1e-2, 1e-3, 1e-4, 1e-5, 1e-6)},
    ),
    CLMethod(
        "random-features", closed_form=True, grid={"learn.ridge": (1e-2, 1e-3, 1e-4, 1e-5, 1e-6)}
    ),
):
    CL_METHODS.register(_m.name, _m)
