"""Plasticity by birth: cells born for an earlier task learn at a lower rate (a callback).

A growth rule that records the task a cell was born for (``tissue.task``, e.g.
``domain_grow``) leaves the old skills in the old cells only if those cells stop
following the new task's gradient. :class:`Plasticity` scales each training step's
update of every bank row of a cell born for an older task than the newest by
``old_lr_scale``, and the update of the shared parameters (embedding, head, edge
strengths) by ``shared_lr_scale``: after the optimizer step, ``p ← p₀ + scale·(p − p₀)``
with ``p₀`` the parameter before the step — for AdamW exactly a per-row learning rate
(its step, weight decay included, is linear in the rate), and with scale 0 a freeze
(LLaMA Pro's frozen old blocks, Wu et al. 2024; PackNet's frozen weights, Mallya &
Lazebnik 2018). Nothing changes until a cell of task > 0 exists. With ``self_replay``, at
the first birth for each new task the network samples windows of itself and hands them to
the task (``task.remember``), which mixes them into later batches: replay of the old
skills that stores no training text (generative replay, Shin et al. 2017).

    cfg = PlasticityConfig(enabled=True, old_lr_scale=0.0)
    trainer = Trainer(net, task, train_cfg, callbacks=[Scheduler(growth), Plasticity(cfg)])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from morpho.callbacks import Callback, StepResult
from morpho.edits import Edit

if TYPE_CHECKING:
    from morpho.trainer import Trainer


@dataclass(frozen=True)
class PlasticityConfig:
    """``[plasticity]``: the learning-rate scales of cells born for older tasks."""

    enabled: bool = False  # apply the policy at all
    old_lr_scale: float = 0.0  # update scale of the bank rows of cells of older tasks
    shared_lr_scale: float = 1.0  # update scale of the parameters outside the cell banks
    self_replay: int = 0  # windows the network samples of itself at each birth of a later
    # task's cell, handed to a task that keeps them (``task.remember``): data-free replay
    temperature: float = 1.0  # sampling temperature of the self-replay windows

    def __post_init__(self) -> None:
        for name in ("old_lr_scale", "shared_lr_scale"):
            v = getattr(self, name)
            if not 0 <= v <= 1:
                raise ValueError(f"plasticity.{name} must be in [0, 1]; got {v!r}")
        if self.self_replay < 0:
            raise ValueError(f"plasticity.self_replay must be >= 0; got {self.self_replay!r}")
        if not self.temperature > 0:
            raise ValueError(f"plasticity.temperature must be > 0; got {self.temperature!r}")


class Plasticity(Callback):
    """Scales each step's update of old cells' rows and of shared parameters; see the
    module docstring."""

    def __init__(self, cfg: PlasticityConfig) -> None:
        self.cfg = cfg
        self.before: dict[str, Tensor] = {}  # parameter values before the next step
        self.remembered = 0  # the newest task whose birth was sampled for self-replay
        self.samples: list[Tensor] = []  # the windows handed to the task (checkpointed)

    def scales(self, trainer: Trainer) -> dict[str, Tensor | float]:
        """Per parameter: a row scale (n_rows,) for cell banks, a float for the rest; empty
        while no cell of a later task exists (the policy is off)."""
        net = trainer.net
        task = net.tissue.task
        if int(task.max()) == 0:
            return {}
        old = (task < task.max()).float()  # (N,) 1 for cells of older tasks
        row = 1.0 - old * (1.0 - self.cfg.old_lr_scale)  # (N,)
        out: dict[str, Tensor | float] = {}
        for name, p in net.named_parameters():
            per_cell = name.startswith("banks.") and p.dim() >= 1 and len(p) == len(task)
            if per_cell and name != "banks.strength":
                out[name] = row.to(p.device).view(-1, *[1] * (p.dim() - 1))
            else:
                out[name] = self.cfg.shared_lr_scale
        return out

    def on_train_start(self, trainer: Trainer) -> None:
        self._remember(trainer)
        remember = getattr(trainer.task, "remember", None) if self.samples else None
        if remember is not None:
            for windows in self.samples:  # a resumed run: the task's memory back as it was
                remember(windows)

    def on_edit(self, trainer: Trainer, edit: Edit) -> None:
        self.before = {}  # shapes changed: remembered again at the end of the step
        task = edit.tissue.task
        newest = int(task.max())
        born = [int(task[edit.tissue.cell_id == c][0]) for c in edit.info.get("new_cells", [])]
        remember = getattr(trainer.task, "remember", None)
        if self.cfg.self_replay and remember is not None and newest in born:
            if newest > self.remembered:  # once per task, whatever cells it gets
                self.remembered = newest
                self.samples.append(self.sample(trainer))
                remember(self.samples[-1])

    @torch.no_grad()
    def sample(self, trainer: Trainer) -> Tensor:
        """(self_replay, T + 1) windows sampled of the network (an edit in series is the
        identity at birth, so it samples the function learned before the new task)."""
        net, cfg = trainer.net, trainer.cfg
        gen = torch.Generator().manual_seed(cfg.seed + 104729 * self.remembered)
        x = torch.randint(0, net.cfg.vocab_size, (self.cfg.self_replay, 1), generator=gen)
        was_training = net.training
        net.eval()
        for _ in range(cfg.seq_len):
            logits = net(x.to(trainer.device))[:, -1].float().cpu() / self.cfg.temperature
            nxt = torch.multinomial(torch.softmax(logits, -1), 1, generator=gen)
            x = torch.cat([x, nxt], 1)
        net.train(was_training)
        return x  # (n, T + 1)

    @torch.no_grad()
    def on_step_end(self, trainer: Trainer, step: int, result: StepResult) -> None:
        scales = self.scales(trainer) if self.before else {}
        for name, p in trainer.net.named_parameters():
            s = scales.get(name, 1.0)
            p0 = self.before.get(name)
            if p0 is None or p0.shape != p.shape or (isinstance(s, float) and s == 1.0):
                continue
            p.copy_(p0 + s * (p - p0))
        self._remember(trainer)

    def _remember(self, trainer: Trainer) -> None:
        self.before = {n: p.detach().clone() for n, p in trainer.net.named_parameters()}

    def state_dict(self) -> dict[str, Any]:
        return {"remembered": self.remembered, "samples": list(self.samples)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.remembered = int(state.get("remembered", 0))
        self.samples = list(state.get("samples", []))
