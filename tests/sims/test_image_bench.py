"""``morpho bench --task digits``: the image rows, the optimizer-reset row, the MLP and GroMo peers.

Laws: the reset row's optimizer is fresh after every edit while morpho's carries its state;
the MLP lands on morpho's final parameter count; every row logs accuracy against FLOPs and
``reach`` is the first logged FLOPs at the target; the GroMo row (only with ``gromo``
installed) charges its statistics, linear algebra and line search on top of its steps.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from morpho.config import RunConfig
from morpho.edits import split_edit
from morpho.grow import build_network, fit_to_task
from morpho.sims.baselines import build_image_mlp, mlp_params
from morpho.sims.bench import ResetOptimizer, bench, first_reach, row_names
from morpho.sims.gromo_peer import gromo_available
from morpho.sims.images import DigitsTask
from morpho.trainer import Trainer
from morpho.viz.bench_plot import bench_curves, plot_bench

TINY = {
    "task": "digits",
    "network": {"d_cell": 8, "level_sizes": [1, 2, 1], "n_heads": 2, "mlp_ratio": 1},
    "train": {"steps": 12, "batch_size": 8, "eval_every": 6, "log_every": 3, "warmup": 2},
    "growth": {"start": 2, "interval": 3, "cooldown": 0},
}


def test_image_rows_replace_the_token_peers() -> None:
    names = row_names(RunConfig().merged(TINY))
    ablations = [f"morpho-no-{r}" for r in ("mitosis", "apoptosis", "dendrite", "prune")]
    peers = ["mlp", "gromo"] if gromo_available() else ["mlp"]
    assert names == ["morpho", "morpho-fixed", *ablations, "morpho-reset", *peers]
    with pytest.raises(ValueError, match="expected one of: .*morpho-reset, mlp"):
        row_names(RunConfig().merged(TINY), ["gru"])


def test_the_mlp_lands_on_the_target_parameters() -> None:
    mlp = build_image_mlp(64, 10, 30_000)
    assert abs(mlp.n_params() - 30_000) <= 64 + 1 + 10
    assert mlp.n_params() == mlp_params(64, 10, mlp.cfg.hidden)
    assert mlp(torch.rand(3, 8, 8)).shape == (3, 1, 10)
    with pytest.raises(ValueError, match="T·k = 64"):
        mlp(torch.rand(3, 4, 8))


def test_reset_row_gets_a_fresh_optimizer_at_every_edit() -> None:
    task = DigitsTask()
    cfg = fit_to_task(RunConfig().merged(TINY), task)
    trainer = Trainer(
        build_network(cfg, task.vocab_size), task, cfg.train, callbacks=[ResetOptimizer()]
    )
    for _ in range(3):
        trainer.train_step()
    old = trainer.optimizer
    cell = trainer.net.cell_ids()[1]
    trainer.apply_edit(split_edit(trainer.net, cell, noise=0.0))
    assert trainer.optimizer is not old and not trainer.optimizer.state
    params = {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}
    assert params == {id(p) for p in trainer.net.parameters()}


def test_tiny_image_bench_logs_accuracy_against_flops(tmp_path: Path) -> None:
    rows = ["morpho", "morpho-fixed", "morpho-reset", "mlp"]
    result = bench(RunConfig().merged(TINY), tmp_path / "b", rows=rows, eval_points=2)
    assert [r["name"] for r in result["rows"]] == rows
    final = {r["name"]: r for r in result["rows"]}
    mlp, morpho = final["mlp"]["params"], final["morpho"]["params"]
    assert abs(mlp - morpho) <= 64 + 1 + 10  # one hidden unit
    curves = bench_curves(tmp_path / "b")
    assert set(curves) == set(rows) and all(0 <= acc <= 1 for c in curves.values() for _, acc in c)
    for name, entry in result["reach"].items():
        target = entry["target"]
        assert entry["flops"] == first_reach(tmp_path / "b" / name / "metrics.jsonl", target)
        reached = [f for f, acc in curves[name] if acc >= target]
        assert entry["flops"] == (reached[0] if reached else None)
    assert json.loads((tmp_path / "b" / "bench.json").read_text())["reach"] == result["reach"]
    assert plot_bench(tmp_path / "b")[0].name == "accuracy_vs_flops.png"


def test_gromo_row_charges_its_statistics_linear_algebra_and_line_search(tmp_path: Path) -> None:
    pytest.importorskip("gromo")
    from morpho.sims.gromo_peer import gromo_row

    task = DigitsTask()
    cfg = fit_to_task(RunConfig().merged(TINY), task)
    summary = gromo_row(task, cfg, target_hidden=12, path=tmp_path / "g")
    kinds = summary["flops_by_kind"]
    assert all(kinds[k] > 0 for k in ("train", "statistics", "linalg", "line_search"))
    assert summary["dense_train_flops"] == pytest.approx(sum(kinds.values()))
    assert 2 < summary["width"] <= 12 and summary["growth_rounds"] >= 1
    events = [
        json.loads(line) for line in (tmp_path / "g" / "events.jsonl").read_text().splitlines()
    ]
    assert sum(sum(e["flops"].values()) for e in events) == pytest.approx(
        kinds["statistics"] + kinds["linalg"] + kinds["line_search"]
    )
