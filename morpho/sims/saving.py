"""Does growing save training compute? Compute-to-target and loss at equal compute.

The field's test of a growth method (Shen et al. 2022; Du et al. 2024; Kaddour et al. 2023):
a grown run against the final-size model trained from scratch, both charged every FLOP of
training (for the grown run every stage before it reached its final size, and every extra
forward its scheduler ran). Two figures follow from the two curves of validation loss
against cumulative dense training FLOPs:

* **compute to target** — the FLOPs at which a run's best-so-far validation loss first
  reaches the target (the from-scratch run's best), linearly interpolated between the two
  evaluations around the crossing; the *saving* is ``1 − F_grown / F_scratch``;
* **loss at equal compute** — a run's best-so-far loss after a given number of FLOPs.

A curve is the ``flops`` lines a :class:`~morpho.flops.FlopCounter` writes to a run's
``metrics.jsonl``::

    grown, scratch = read_curve("runs/g/morpho"), read_curve("runs/g/morpho-fixed")
    saving(grown, scratch)          # 0.31: 31 % fewer FLOPs to the scratch run's best loss
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from morpho.rundir import read_jsonl


@dataclass(frozen=True)
class Curve:
    """Validation loss against cumulative dense training FLOPs, one point per evaluation.

    ``flops`` increases; ``loss`` is the evaluation's value at that point (lower is better).
    """

    flops: tuple[float, ...]
    loss: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.flops) != len(self.loss) or not self.flops:
            raise ValueError(
                f"a curve needs as many losses as FLOP counts, at least one; got "
                f"{len(self.flops)} and {len(self.loss)}"
            )
        if any(b < a for a, b in zip(self.flops, self.flops[1:], strict=False)):
            raise ValueError("a curve's FLOP counts must not decrease")

    @property
    def best(self) -> float:
        return min(self.loss)

    @property
    def total(self) -> float:
        return self.flops[-1]

    def best_so_far(self) -> list[float]:
        out, low = [], math.inf
        for v in self.loss:
            low = min(low, v)
            out.append(low)
        return out


def read_curve(run: str | os.PathLike[str], key: str = "val_bpc") -> Curve:
    """The curve of a run directory (its ``flops`` metrics lines; one per FLOP count).

    Raises:
        ValueError: the run logged no ``flops`` line with a ``key`` value.
    """
    points: dict[float, float] = {}
    for rec in read_jsonl(Path(run) / "metrics.jsonl"):
        if rec.get("kind") == "flops" and rec.get(key) is not None:
            points[float(rec["dense_train_flops"])] = float(rec[key])  # the last line at a count
    if not points:
        raise ValueError(
            f"{run} has no 'flops' metrics lines with {key!r}; expected a FlopCounter run"
        )
    flops = sorted(points)
    return Curve(tuple(flops), tuple(points[f] for f in flops))


def flops_to_target(curve: Curve, target: float) -> float | None:
    """FLOPs at which the best-so-far loss first reaches ``target`` (``None``: never).

    Between the last evaluation above the target and the first at or below it, the loss is
    taken as linear in FLOPs; at the first evaluation already at the target, its count.
    """
    best = curve.best_so_far()
    for i, v in enumerate(best):
        if v <= target:
            if i == 0:
                return curve.flops[0]
            f0, f1, l0 = curve.flops[i - 1], curve.flops[i], best[i - 1]
            return f0 + (f1 - f0) * (l0 - target) / (l0 - v)
    return None


def loss_at(curve: Curve, flops: float) -> float:
    """The best-so-far loss after ``flops`` (the evaluations at or before it; ``inf``: none)."""
    seen = [v for f, v in zip(curve.flops, curve.loss, strict=True) if f <= flops]
    return min(seen) if seen else math.inf


def saving(grown: Curve, scratch: Curve, target: float | None = None) -> float | None:
    """``1 − F_grown / F_scratch`` at ``target`` (default: the scratch run's best loss).

    Positive: growing reached the target with that share fewer FLOPs; ``None``: the grown run
    never reached it.
    """
    target = scratch.best if target is None else target
    f_grown, f_scratch = flops_to_target(grown, target), flops_to_target(scratch, target)
    if f_grown is None or f_scratch is None or f_scratch <= 0:
        return None
    return 1.0 - f_grown / f_scratch


@dataclass(frozen=True)
class Paired:
    """Per-seed values and their summary (mean, sample standard deviation, min, max)."""

    values: tuple[float, ...]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def std(self) -> float:
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0

    def __str__(self) -> str:
        if not self.values:
            return "-"
        return (
            f"{self.mean:+.3f} ± {self.std:.3f} (min {min(self.values):+.3f}, n={len(self.values)})"
        )


def paired(a: Sequence[float], b: Sequence[float]) -> Paired:
    """Per-seed differences ``a[i] − b[i]`` (the same seed, data and budget for both)."""
    if len(a) != len(b):
        raise ValueError(
            f"paired values need one per seed on both sides; got {len(a)} and {len(b)}"
        )
    return Paired(tuple(x - y for x, y in zip(a, b, strict=True)))
