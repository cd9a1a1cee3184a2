"""Continual-learning figures of a ``morpho grow`` run over a stream of language domains.

A run of ``--task lang-domains`` logs ``val_bpc/<domain>`` at every evaluation; the
evaluation at the end of domain ``i`` (step ``(i + 1) · steps_per_domain``) gives row ``i``
of the matrix ``R[i][j]`` = bits per character on domain ``j`` after training domain ``i``.
The figures (:mod:`morpho.sims.cl_metrics`, lower is better) are the average bpc over all
domains after the stream, the backward transfer (negative: old domains got worse), the
forgetting, and the last domain's bpc.

    figures = run_cl_figures("runs/lang-domains-0")
    figures["avg_bpc"], figures["bwt"], figures["R"]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from morpho.rundir import read_jsonl
from morpho.sims.cl_metrics import backward_transfer, forgetting

PREFIX = "val_bpc/"


def domain_matrix(run: str | Path) -> tuple[list[str], list[list[float]]]:
    """``(domains, R)`` of a run directory (``ValueError`` if an end-of-domain eval is missing)."""
    path = Path(run)
    summary = json.loads((path / "summary.json").read_text())
    task = summary["task"]
    domains, spd = list(task["domains"]), int(task["steps_per_domain"])
    evals = {r["step"]: r for r in read_jsonl(path / "metrics.jsonl") if r.get("kind") == "eval"}
    R = []
    for i in range(len(domains)):
        step = (i + 1) * spd if i < len(domains) - 1 else int(summary["steps"])
        if step not in evals:
            raise ValueError(
                f"run {str(path)!r} has no evaluation at step {step} (the end of domain "
                f"{domains[i]!r}); expected train.eval_every to divide steps_per_domain"
            )
        R.append([float(evals[step][PREFIX + d]) for d in domains])
    return domains, R


def run_cl_figures(run: str | Path) -> dict[str, Any]:
    """The matrix and its figures: ``avg_bpc``, ``bwt``, ``forgetting``, ``last_bpc``."""
    domains, R = domain_matrix(run)
    return {
        "domains": domains,
        "R": R,
        "avg_bpc": sum(R[-1]) / len(R[-1]),
        "bwt": backward_transfer(R, higher_is_better=False),
        "forgetting": forgetting(R, higher_is_better=False),
        "last_bpc": R[-1][-1],
        "diag": [R[i][i] for i in range(len(R))],
    }


def growth_events(run: str | Path) -> list[dict[str, Any]]:
    """The run's topology events (``events.jsonl``), in order."""
    return read_jsonl(Path(run) / "events.jsonl")
