"""Closed-form continual learners: a ridge head over fixed features, solved from running sums.

``analytic`` reads an untrained reservoir: the tissue as it was born (never trained on the
stream), every cell at every input position (``cells × positions × d_cell`` numbers, not
the pooled ``d_cell`` of a gradient learner's head). ``random-features`` reads one fixed
random ReLU layer over the raw pixels, as wide as ``analytic``'s features, so the two keep
the same floats: it is the control that says what the reservoir adds. Both heads are the
ridge regression of one-hot targets on the features,

    W = (G + λ·mean(diag G)·I)⁻¹ Q,   G = Σ φ φᵀ,   Q = Σ φ yᵀ,

with ``G`` and ``Q`` summed over every training example seen so far: analytic
class-incremental learning (ACIL, Zhuang et al. 2022) and random-projection heads
(RanPAC, McDonnell et al. 2023). After any task the head is exactly the one a joint fit
on all data seen would give, in any task order. What is kept between tasks is ``G`` and
``Q`` (:meth:`RidgeStats.floats`): sufficient statistics of a known, fixed function of the
pixels, so their size is compared with the raw data's in floats (replay at equal floats).
With a task id, each task's head is solved from that task's sums alone and the sums are
then dropped: an old task's answers can never change (backward transfer exactly 0).

Optionally the reservoir's features are first expanded by a fixed random ReLU layer of
``width`` units (``expand``), which trades the size of ``G`` against accuracy.

    learner = AnalyticLearner(stream, LearnConfig(), MorphoCLConfig())
    for t, task in enumerate(stream.tasks):
        learner.fit_task(t, task)         # one forward pass over the task, then the solve
    learner.predict(x, head)              # (B, classes) logits of each example's head
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from morpho.rundir import RunDir
from morpho.sims.continual import LearnConfig, Learner
from morpho.sims.morpho_cl import MorphoCLConfig, analytic_dim
from morpho.sims.streams import Stream, StreamTask


class RidgeStats:
    """Running sums ``G = Σ φ φᵀ`` (D, D) and ``Q = Σ φ yᵀ`` (D, K) of a ridge regression,
    kept in float64; :meth:`solve` gives the (D, K) weights."""

    def __init__(self, dim: int, outputs: int) -> None:
        self.gram = torch.zeros(dim, dim, dtype=torch.float64)
        self.cross = torch.zeros(dim, outputs, dtype=torch.float64)
        self.count = 0

    def add(self, features: Tensor, targets: Tensor) -> None:
        """Add a batch: ``features`` (n, D), ``targets`` (n, K) (one-hot rows)."""
        if features.dim() != 2 or features.shape[1] != self.gram.shape[0]:
            raise ValueError(
                f"expected features of shape (n, {self.gram.shape[0]}); got {tuple(features.shape)}"
            )
        f = features.detach().to("cpu", torch.float64)
        self.gram += f.T @ f
        self.cross += f.T @ targets.detach().to("cpu", torch.float64)
        self.count += len(f)

    def solve(self, ridge: float) -> Tensor:
        """The ridge weights (D, K): ``ridge`` is relative to the mean of ``G``'s diagonal,
        so it does not depend on how many examples or how large the features are."""
        if ridge <= 0:
            raise ValueError(f"expected ridge > 0; got {ridge}")
        dim = self.gram.shape[0]
        scale = float(self.gram.diagonal().mean()) if self.count else 1.0
        lam = ridge * max(scale, 1e-12)
        return torch.linalg.solve(self.gram + lam * torch.eye(dim, dtype=torch.float64), self.cross)

    def floats(self) -> int:
        """Floats kept: ``G``'s triangle and ``Q``."""
        return sum_floats(*self.cross.shape)


def sum_floats(dim: int, outputs: int) -> int:
    """Floats of the running sums for ``dim`` features and ``outputs`` targets."""
    return dim * (dim + 1) // 2 + dim * outputs


def kept_floats(stream: Stream, learn: LearnConfig, cl: MorphoCLConfig) -> int:
    """Floats the analytic learner keeps on ``stream`` (0 with a task id: sums dropped)."""
    if stream.task_id_given:
        return 0
    return sum_floats(analytic_dim(stream, learn, cl), stream.n_heads * stream.head_size)


class RandomExpansion:
    """A fixed random ReLU layer ``φ = relu(f R / √d_in + b)``: (n, d_in) → (n, width)."""

    def __init__(self, d_in: int, width: int, seed: int) -> None:
        if width <= 0:
            raise ValueError(f"expected an expansion width > 0; got {width}")
        gen = torch.Generator().manual_seed(seed)
        self.weight = torch.randn(d_in, width, generator=gen) / d_in**0.5
        self.bias = 0.5 * torch.randn(width, generator=gen)

    def __call__(self, f: Tensor) -> Tensor:
        w, b = self.weight.to(f.device), self.bias.to(f.device)
        return torch.relu(f @ w + b)


class AnalyticLearner(Learner):
    """Closed-form heads over every cell's state of an untrained tissue (module docstring).

    Attributes:
        ridge_weight: (D, heads × classes) float64 head weights.
        ridge_stats: the running sums, or None with a task id (each task solved alone).
        expansion: the fixed random ReLU layer, or None.
    """

    def __init__(
        self, stream: Stream, cfg: LearnConfig, cl: MorphoCLConfig, run: RunDir | None = None
    ) -> None:
        if stream.kind != "classify":
            raise ValueError(f"analytic heads need an image stream; got a {stream.kind} stream")
        super().__init__(stream, cfg)
        self.cl, self.run = cl, run
        dim = analytic_dim(stream, cfg, cl)
        with torch.no_grad():
            raw = self.raw_features(stream.tasks[0].x_train[:1].to(self.device)).shape[1]
        self.expansion = RandomExpansion(raw, cl.expand, cfg.seed) if cl.expand else None
        outputs = stream.n_heads * stream.head_size
        self.ridge_weight = torch.zeros(dim, outputs, dtype=torch.float64)
        self.ridge_stats = None if stream.task_id_given else RidgeStats(dim, outputs)
        self.frame = -1
        self._snapshot("start")

    @property
    def net(self):  # type: ignore[no-untyped-def]
        return self.model.net

    def raw_features(self, x: Tensor) -> Tensor:
        """Every cell's output at every input position, (B, cells × positions × d); or,
        without ``cell_readout``, the pooled, normalised readout state (B, d)."""
        if not self.cl.cell_readout:
            return self.model.features(x)[0]
        out = self.net.run_tissue(self.model.adapter(x), capture=True)
        states = torch.cat(list(out.captured[0].outputs))  # (N, B, T, d)
        return states.transpose(0, 1).flatten(1)

    @torch.no_grad()
    def features(self, x: Tensor) -> Tensor:
        """The heads' input for ``x`` (B, D)."""
        f = self.raw_features(x)
        return f if self.expansion is None else self.expansion(f)

    @torch.no_grad()
    def fit_task(self, t: int, task: StreamTask) -> None:
        """One pass over the task's training split into the sums, then the solve."""
        self.model.eval()
        width = self.stream.head_size
        own = self.ridge_stats is None  # a task id: this task's sums alone
        stats = RidgeStats(*self.ridge_weight.shape) if own else self.ridge_stats
        assert stats is not None
        for x, y in zip(task.x_train.split(256), task.y_train.split(256), strict=True):
            targets = F.one_hot(task.head * width + y, self.ridge_weight.shape[1])
            stats.add(self.features(x.to(self.device)), targets)
        solved = stats.solve(self.cl.ridge)
        if own:  # only this task's head changes
            cols = slice(task.head * width, (task.head + 1) * width)
            self.ridge_weight[:, cols] = solved[:, cols]
        else:
            self.ridge_weight = solved
        self._snapshot("task_end", task=t)

    @torch.no_grad()
    def predict(self, x: Tensor, head: Tensor) -> Tensor:
        w = self.ridge_weight.to(self.device)
        logits = (self.features(x).to(w.dtype) @ w).float()
        every = logits.view(len(x), self.stream.n_heads, self.stream.head_size)
        return every[torch.arange(len(x)), head]

    def memory_floats(self) -> int:
        return self.ridge_stats.floats() if self.ridge_stats is not None else 0

    def n_params(self) -> int:
        """Parameters that answer: the tissue and adapter, and the solved heads."""
        heads = sum(p.numel() for p in self.model.heads.parameters())
        return self.model.n_params() - heads + self.ridge_weight.numel()

    def _snapshot(self, kind: str, **meta: object) -> Path | None:
        """A movie frame (numbered 0, 1, 2, …: no optimizer step is taken)."""
        if self.run is None:
            return None
        self.frame += 1
        meta = {"kind": kind, "train_step": self.step, **meta}
        return self.run.save_snapshot(self.net.snapshot(None), self.frame, meta)


class RandomFeaturesLearner(AnalyticLearner):
    """The same closed-form heads over one fixed random ReLU layer of the raw pixels, as wide
    as :class:`AnalyticLearner`'s features on the same stream and config (equal floats)."""

    def __init__(
        self, stream: Stream, cfg: LearnConfig, cl: MorphoCLConfig, run: RunDir | None = None
    ) -> None:
        super().__init__(stream, cfg, replace(cl, cell_readout=False, expand=0), run)
        pixels = int(torch.tensor(stream.input_shape).prod())
        width = analytic_dim(stream, cfg, cl)
        self.expansion = RandomExpansion(pixels, width, cfg.seed)
        self.ridge_weight = torch.zeros(width, self.ridge_weight.shape[1], dtype=torch.float64)
        if self.ridge_stats is not None:
            self.ridge_stats = RidgeStats(*self.ridge_weight.shape)

    def raw_features(self, x: Tensor) -> Tensor:
        """The raw pixels, flattened: (B, H × W)."""
        return x.flatten(1)

    def n_params(self) -> int:
        """Parameters that answer: the random layer and the solved heads."""
        assert self.expansion is not None
        layer = self.expansion.weight.numel() + self.expansion.bias.numel()
        return layer + self.ridge_weight.numel()
