"""Continual-learning metrics over an accuracy (or bits-per-character) matrix.

``R[i, j]`` is the score on task ``j``'s test split after training on tasks ``0 … i``
(T × T). ``b[j]`` is the score of the untrained network on task ``j`` (for forward
transfer). Definitions follow the literature (and Avalanche's metrics):

* average accuracy ``ACC = 1/T Σ_j R[T-1, j]`` — Lopez-Paz & Ranzato 2017 (GEM, eq. 2);
* backward transfer ``BWT = 1/(T-1) Σ_{j<T-1} (R[T-1, j] − R[j, j])`` — GEM, eq. 3;
* forward transfer ``FWT = 1/(T-1) Σ_{j≥1} (R[j-1, j] − b[j])`` — GEM, eq. 4;
* forgetting ``F = 1/(T-1) Σ_{j<T-1} max_{j≤l<T-1} (R[l, j] − R[T-1, j])`` — Chaudhry et
  al. 2018 (RWalk, eq. 7); like Avalanche, only scores after task ``j`` was learned count.

For a lower-is-better score (bits per character) the differences are negated, so a
negative BWT and a positive forgetting always mean that old tasks got worse.

    summary = cl_summary(R, b)            # {"avg_accuracy", "bwt", "fwt", "forgetting"}
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

ArrayLike = Sequence[Sequence[float]] | np.ndarray


def _check(R: ArrayLike) -> np.ndarray:
    m = np.asarray(R, dtype=float)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] < 1:
        raise ValueError(f"expected a square T × T matrix; got shape {m.shape}")
    return m


def average_accuracy(R: ArrayLike) -> float:
    """Mean score over all tasks after the last task (GEM's ACC)."""
    m = _check(R)
    return float(m[-1].mean())


def backward_transfer(R: ArrayLike, higher_is_better: bool = True) -> float:
    """Mean change on each old task from right after learning it to the end (GEM's BWT)."""
    m = _check(R)
    T = m.shape[0]
    if T < 2:
        return 0.0
    sign = 1.0 if higher_is_better else -1.0
    return float(sign * np.mean(m[-1, :-1] - np.diag(m)[:-1]))


def forward_transfer(
    R: ArrayLike, baseline: Sequence[float], higher_is_better: bool = True
) -> float:
    """Mean score on each task before training on it, minus an untrained network's (GEM's FWT)."""
    m = _check(R)
    b = np.asarray(baseline, dtype=float)
    T = m.shape[0]
    if b.shape != (T,):
        raise ValueError(f"expected {T} baseline scores; got shape {b.shape}")
    if T < 2:
        return 0.0
    sign = 1.0 if higher_is_better else -1.0
    return float(sign * np.mean(np.array([m[j - 1, j] - b[j] for j in range(1, T)])))


def forgetting(R: ArrayLike, higher_is_better: bool = True) -> float:
    """Mean drop from each old task's best score (before the last task) to its final score."""
    m = _check(R)
    T = m.shape[0]
    if T < 2:
        return 0.0
    pick = np.max if higher_is_better else np.min
    best = np.array([pick(m[j:-1, j]) for j in range(T - 1)])
    drop = best - m[-1, :-1]
    return float(drop.mean() if higher_is_better else -drop.mean())


def cl_summary(
    R: ArrayLike, baseline: Sequence[float] | None = None, higher_is_better: bool = True
) -> dict[str, float | None]:
    """All four metrics of a matrix; ``fwt`` is None without the untrained baseline."""
    return {
        "avg_accuracy": average_accuracy(R),
        "bwt": backward_transfer(R, higher_is_better),
        "fwt": None if baseline is None else forward_transfer(R, baseline, higher_is_better),
        "forgetting": forgetting(R, higher_is_better),
    }
