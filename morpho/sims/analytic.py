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

The driver of ``morpho stream`` evaluates them: they have no optimizer, no training loop
and write no run directory; the reservoir is the same :class:`~morpho.network.Network`
(``network`` config, the stream's seed) the gradient methods train on the trainer.

    learner = AnalyticLearner(task, net_cfg, ridge=1e-4, seed=0)   # task: a TaskStream
    for t in range(task.n_tasks):
        learner.fit_task(t)               # one forward pass over the task, then the solve
    learner.logits(x)                     # (B, 1, outputs)
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from morpho.network import Network, NetworkConfig

MAX_ANALYTIC_FEATURES = 8192  # a Gram of 8192² float64 numbers is 0.5 GB


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


class AnalyticLearner:
    """Closed-form heads over every cell's state of an untrained tissue (module docstring).

    Attributes:
        ridge_weight: (D, outputs) float64 head weights.
        ridge_stats: the running sums, or None with a task id (each task solved alone).
        expansion: the fixed random ReLU layer, or None.
    """

    def __init__(
        self,
        stream: Any,
        net_cfg: NetworkConfig,
        ridge: float = 1e-4,
        seed: int = 0,
        expand: int = 0,
        cell_readout: bool = True,
    ) -> None:
        if stream.kind != "classify":
            raise ValueError(f"analytic heads need an image stream; got a {stream.kind} stream")
        self.stream, self.ridge, self.cell_readout = stream, ridge, cell_readout
        cfg = replace(net_cfg, vocab_size=stream.vocab_size, seed=seed)
        self.net = reservoir(cfg).eval()
        self.expansion: RandomExpansion | None = None
        probe = self.raw_features(stream.task_batches(0, "train", 1)[0][0])
        if expand:
            self.expansion = RandomExpansion(probe.shape[1], expand, seed)
        self.setup(expand or probe.shape[1])

    def setup(self, dim: int) -> None:
        """Heads and sums for ``dim`` features (``ValueError`` above the limit)."""
        check_dim(dim)
        outputs = self.stream.vocab_size
        self.ridge_weight = torch.zeros(dim, outputs, dtype=torch.float64)
        own = getattr(self.stream, "task_id_given", False)
        self.ridge_stats: RidgeStats | None = None if own else RidgeStats(dim, outputs)

    @torch.no_grad()
    def raw_features(self, x: Tensor) -> Tensor:
        """Every cell's output at every input position, (B, cells × positions × d); or,
        without ``cell_readout``, the network's readout state at the last position (B, d)."""
        out = self.net.run(x, capture=self.cell_readout)
        if not self.cell_readout:
            return self.net.readout_state(out.state)[:, -1]
        states = torch.cat(list(out.captured[0].outputs))  # (N, B, T, d)
        return states.transpose(0, 1).flatten(1)

    @torch.no_grad()
    def features(self, x: Tensor) -> Tensor:
        """The heads' input for ``x`` (B, D)."""
        f = self.raw_features(x)
        return f if self.expansion is None else self.expansion(f)

    @torch.no_grad()
    def fit_task(self, t: int) -> None:
        """One pass over task ``t``'s training split into the sums, then the solve."""
        own = self.ridge_stats is None  # a task id: this task's sums alone
        stats = RidgeStats(*self.ridge_weight.shape) if own else self.ridge_stats
        assert stats is not None
        for x, y in self.stream.task_batches(t, "train", 256):
            stats.add(self.features(x), F.one_hot(y[:, 0], self.ridge_weight.shape[1]))
        solved = stats.solve(self.ridge)
        if own:  # only this task's head changes
            cols = self.stream.task_columns(t)
            self.ridge_weight[:, cols] = solved[:, cols]
        else:
            self.ridge_weight = solved

    @torch.no_grad()
    def logits(self, x: Tensor) -> Tensor:
        """(B, 1, outputs) logits of the solved heads."""
        return (self.features(x).double() @ self.ridge_weight).float()[:, None]

    def memory_floats(self) -> int:
        return self.ridge_stats.floats() if self.ridge_stats is not None else 0

    def n_params(self) -> int:
        """Parameters that answer: the tissue and input adapter, and the solved heads."""
        head = {"head", "head_norm"}
        tissue = sum(
            p.numel() for n, p in self.net.named_parameters() if n.split(".")[0] not in head
        )
        return tissue + self.ridge_weight.numel()


class RandomFeaturesLearner(AnalyticLearner):
    """The same closed-form heads over one fixed random ReLU layer of the raw pixels, as wide
    as :class:`AnalyticLearner`'s features on the same stream and config (equal floats)."""

    def __init__(
        self, stream: Any, net_cfg: NetworkConfig, ridge: float = 1e-4, seed: int = 0, **kw: Any
    ) -> None:
        width = AnalyticLearner(stream, net_cfg, ridge, seed, **kw).ridge_weight.shape[0]
        super().__init__(stream, net_cfg, ridge, seed, cell_readout=False)
        pixels = stream.task_batches(0, "train", 1)[0][0][0].numel()
        self.expansion = RandomExpansion(pixels, width, seed)
        self.setup(width)

    def raw_features(self, x: Tensor) -> Tensor:
        """The raw pixels, flattened: (B, H × W)."""
        return x.flatten(1)

    def n_params(self) -> int:
        """Parameters that answer: the random layer and the solved heads."""
        assert self.expansion is not None
        layer = self.expansion.weight.numel() + self.expansion.bias.numel()
        return layer + self.ridge_weight.numel()


def reservoir(cfg: NetworkConfig) -> Network:
    """The untrained network the analytic heads read: the gradient methods' backbone."""
    torch.manual_seed(cfg.seed)
    return Network(cfg)


def check_dim(dim: int) -> None:
    """``ValueError`` for more than :data:`MAX_ANALYTIC_FEATURES` features, naming the way out."""
    if dim > MAX_ANALYTIC_FEATURES:
        raise ValueError(
            f"the analytic heads would read {dim} features (a {dim}×{dim} Gram); expected at "
            f"most {MAX_ANALYTIC_FEATURES}: set [learn] expand (e.g. 4096) or use fewer cells "
            "or channels"
        )
