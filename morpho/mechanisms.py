"""The optional mechanisms of the thermodynamic picture as plug-in terms and monitors.

Each is a :class:`~morpho.terms.Term` registered in :data:`morpho.terms.TERMS` under its
name, built from the run config (each from its own section: ``[ponder]``,
``[path_norm]``, ``[lyapunov]``), and handed to the trainer by whoever builds the run
(:func:`morpho.grow.grow`, ``morpho bench``)::

    terms = build_terms(cfg, net)          # the mechanisms cfg switches on, in loss order
    trainer = Trainer(net, task, cfg.train, terms=terms)

* ``ponder``: ACT's time penalty ``τ·ρ`` (:mod:`morpho.halting`); logs the passes and cost;
* ``path_norm``: ``λ`` times the cell graph's 1-path-norm (:func:`morpho.criticality.path_norm`);
* ``lyapunov``: a finite-time Lyapunov exponent every ``every`` steps, logged, and with a
  weight ``δ·max(Λ − Λ*, 0)²`` on the steps it runs;
* ``repr_entropy``: logs the cells' KNIFE entropies the growth scheduler measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from morpho.coerce import require
from morpho.criticality import lyapunov_probe, path_norm
from morpho.output import Output
from morpho.terms import TERMS, StepContext, Term

BUILTIN = ("ponder", "path_norm", "lyapunov", "repr_entropy")  # the order of the loss sum


@dataclass(frozen=True)
class PonderConfig:
    """``[ponder]``: the time penalty of adaptive computation (``network.ponder_max > 1``)."""

    weight: float = 0.01  # τ of the ACT time penalty τ·ρ

    def __post_init__(self) -> None:
        require(self.weight >= 0, "ponder.weight", ">= 0", self.weight)


@dataclass(frozen=True)
class PathNormConfig:
    """``[path_norm]``: the cell graph's 1-path-norm, logged and penalised."""

    weight: float = 0.0  # λ of the regulariser (0: off)

    def __post_init__(self) -> None:
        require(self.weight >= 0, "path_norm.weight", ">= 0", self.weight)


@dataclass(frozen=True)
class LyapunovConfig:
    """``[lyapunov]``: finite-time Lyapunov exponents of the tissue, logged and optionally
    held at the edge of chaos."""

    every: int = 0  # steps between estimates (0: off)
    window: int = 16  # tokens between the perturbation and its read-out (< train.seq_len)
    weight: float = 0.0  # δ of δ·max(Λ − Λ*, 0)², on the steps the estimate runs
    target: float = 0.0  # Λ*: the edge of chaos

    def __post_init__(self) -> None:
        require(self.every >= 0, "lyapunov.every", ">= 0", self.every)
        require(self.weight >= 0, "lyapunov.weight", ">= 0", self.weight)
        require(self.window >= 1, "lyapunov.window", ">= 1", self.window)
        require(
            not self.weight or self.every > 0,
            "lyapunov.every",
            "> 0 when lyapunov.weight is set",
            self.every,
        )


class Ponder(Term):
    """ACT's time penalty ``weight · ρ`` (Graves 2016); logs passes and cost of a record."""

    def __init__(self, weight: float) -> None:
        self.weight = weight

    def loss(self, ctx: StepContext) -> Tensor | None:
        out = ctx.output
        if out is None or out.ponder is None or not self.weight:
            return None
        return self.weight * out.ponder.ponder_cost

    def record(self, net: Any, output: Output | None) -> dict[str, float]:
        if output is None or output.ponder is None:
            return {}
        return {
            "ponder_passes": float(output.ponder.passes.float().mean()),
            "ponder_cost": float(output.ponder.ponder_cost.detach()),
        }


class PathNorm(Term):
    """``weight ·`` the 1-path-norm of the cell graph (Neyshabur et al. 2015), logged."""

    def __init__(self, weight: float) -> None:
        self.weight = weight

    def loss(self, ctx: StepContext) -> Tensor | None:
        return self.weight * path_norm(ctx.net)

    def record(self, net: Any, output: Output | None) -> dict[str, float]:
        with torch.no_grad():
            return {"path_norm": float(path_norm(net))}


class Lyapunov(Term):
    """Finite-time Lyapunov exponent of the tissue every ``every`` steps, logged; with a
    ``weight`` δ the step adds ``δ·max(Λ − Λ*, 0)²`` (the edge of chaos at ``target``).

    The estimate runs on up to 4 sequences of the batch, the perturbation ``window`` tokens
    before the last one. Its own forward is the record the step's monitors report (its
    ACT passes and cost), as the log has always shown on the steps it runs.
    """

    def __init__(self, every: int, window: int, weight: float, target: float) -> None:
        self.every, self.window, self.weight, self.target = every, window, weight, target
        self.last: Tensor | None = None  # the latest estimate
        self._probe: Output | None = None  # its forward's record, on the steps it runs

    def loss(self, ctx: StepContext) -> Tensor | None:
        self._probe = None
        if ctx.step % self.every:
            return None
        x = ctx.batch[0]
        probe = lyapunov_probe(
            ctx.net,
            ctx.net.embed[x[:4]],  # (b, T, d)
            self.window,
            t0=x.shape[1] - 1 - self.window,
            iters=4,
            generator=ctx.generator,
            differentiable=bool(self.weight),
        )
        self.last, self._probe = probe.value.detach(), probe.output
        if not self.weight:
            return None
        return self.weight * torch.relu(probe.value - self.target).pow(2)

    def second_order(self) -> bool:
        return bool(self.weight)  # the penalty differentiates the J v of the estimate

    def log_output(self) -> Output | None:
        return self._probe

    def record(self, net: Any, output: Output | None) -> dict[str, float]:
        return {} if self.last is None else {"lyapunov": float(self.last)}

    def state_dict(self) -> dict[str, Any]:
        return {"last": None if self.last is None else float(self.last)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("last") is not None:
            self.last = torch.tensor(float(state["last"]))


class ReprEntropy(Term):
    """Logs the mean KNIFE entropy of the cells' outputs, once the scheduler measured it."""

    def record(self, net: Any, output: Output | None) -> dict[str, float]:
        if "repr_entropy" not in net.tissue:
            return {}
        return {"repr_entropy": float(net.tissue.repr_entropy.mean())}


def _ponder(cfg: Any) -> Term | None:
    return Ponder(cfg.ponder.weight) if cfg.network.ponder_max > 1 else None


def _path_norm(cfg: Any) -> Term | None:
    return PathNorm(cfg.path_norm.weight) if cfg.path_norm.weight else None


def _lyapunov(cfg: Any) -> Term | None:
    c = cfg.lyapunov
    return Lyapunov(c.every, c.window, c.weight, c.target) if c.every else None


TERMS.register("ponder", _ponder)
TERMS.register("path_norm", _path_norm)
TERMS.register("lyapunov", _lyapunov)
TERMS.register("repr_entropy", lambda cfg: ReprEntropy())


def build_terms(cfg: Any) -> list[Term]:
    """The terms ``cfg`` (a ``RunConfig``) switches on: the built-ins in the order their
    losses are summed, then any third-party ones (``morpho.loss_terms``) by name."""
    names = [*BUILTIN, *(n for n in TERMS.names() if n not in BUILTIN)]
    built = (TERMS.get(name)(cfg) for name in names)
    return [term for term in built if term is not None]
