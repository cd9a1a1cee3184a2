"""Plug-in terms: a term adds exactly its loss and logs its figures; the built-ins are
registered by name and built from their own config sections."""

from __future__ import annotations

import torch

from morpho.config import RunConfig
from morpho.grow import build_network, build_task
from morpho.mechanisms import build_terms
from morpho.rundir import RunDir, read_jsonl
from morpho.terms import TERMS, StepContext, Term
from morpho.trainer import Trainer

TINY = {
    "network": {"d_cell": 8, "n_heads": 1, "mlp_ratio": 1, "level_sizes": [1, 2, 1]},
    "train": {"steps": 4, "batch_size": 2, "seq_len": 8, "log_every": 2, "eval_batches": 1},
}


class GateSum(Term):
    """Adds ``weight · Σ gate activity`` and logs it."""

    def __init__(self, weight: float) -> None:
        self.weight, self.last = weight, 0.0

    def loss(self, ctx: StepContext) -> torch.Tensor | None:
        assert ctx.output is not None and ctx.batch[0].shape == (2, 8)
        value = ctx.output.gate_activity.sum()
        self.last = float(value)
        return self.weight * value

    def record(self, net, output) -> dict[str, float]:
        return {"gate_sum": self.last}


def _trainer(terms, run=None) -> Trainer:
    cfg = RunConfig.preset("small").merged(TINY)
    task = build_task(cfg)
    torch.manual_seed(0)
    return Trainer(build_network(cfg, task.vocab_size), task, cfg.train, run=run, terms=terms)


def test_a_term_adds_exactly_its_loss() -> None:
    plain, term = _trainer([]), GateSum(0.5)
    with_term = _trainer([term])
    x, y = plain.task.batch("train", 2, 8, torch.Generator().manual_seed(1))
    total, ce, out = plain.loss(x, y)
    total_t, ce_t, _ = with_term.loss(x, y)
    assert torch.equal(ce, ce_t)
    torch.testing.assert_close(total_t, total + 0.5 * out.gate_activity.sum())


def test_a_term_logs_its_figures(tmp_path) -> None:
    run = RunDir(tmp_path / "run")
    run.create("")
    _trainer([GateSum(0.0)], run).fit()
    train = [m for m in read_jsonl(run.path / "metrics.jsonl") if m["kind"] == "train"]
    assert train and all(m["gate_sum"] > 0 for m in train)


def test_the_builtins_are_registered_and_off_by_default() -> None:
    assert {"ponder", "path_norm", "lyapunov", "repr_entropy"} <= set(TERMS.names())
    names = [type(t).__name__ for t in build_terms(RunConfig())]
    assert names == ["ReprEntropy"]  # a monitor that logs only once KNIFE has measured
