"""Analytic consolidation: a stream's heads solved in closed form over the tissue's cell states.

The heads of a gradient-trained continual learner drift towards the newest classes, and any
statistics stored about old classes go stale as the features under them move. Here neither
can happen. The tissue is not trained on the stream; every cell at every input position
gets readout capacity of its own (the head reads ``cells × positions × d_cell`` numbers,
not the pooled ``d_cell`` of the gradient learner), and the head is the ridge regression
of one-hot targets on those features,

    W = (G + λ·mean(diag G)·I)⁻¹ Q,   G = Σ φ φᵀ,   Q = Σ φ yᵀ,

with ``G`` and ``Q`` summed over every training example seen so far. Both sums grow by
one pass over each task's training split, so after any task the head is exactly the one
a joint fit on all data seen would give, in any task order (analytic class-incremental
learning: ACIL, Zhuang et al. 2022; random-feature heads on frozen features: RanPAC,
McDonnell et al. 2023). What is kept between tasks is ``G`` and ``Q``, second moments of
the features; no example and no pixel statistic is stored. With a task id, each task's
head is solved from that task's sums alone and the sums are then dropped: nothing is kept,
and an old task's answers can never change (backward transfer exactly 0).

Optionally the features are first expanded by a fixed random ReLU layer of ``width`` units
(``expand``), which trades the size of ``G`` against accuracy.
"""

from __future__ import annotations

import torch
from torch import Tensor


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
        d, k = self.cross.shape
        return d * (d + 1) // 2 + d * k


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
