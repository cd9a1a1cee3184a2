"""Laws of morpho's analytic consolidation: the running sums are additive and their solve is
the closed-form ridge fit on all data seen, in any task order; with a task id an old task's
answers never change; the tissue is never modified and no example is kept."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from morpho.network import NetworkConfig
from morpho.sims.analytic import (
    AnalyticLearner,
    RandomExpansion,
    RandomFeaturesLearner,
    RidgeStats,
)
from morpho.sims.stream_results import validation_split
from morpho.sims.stream_run import StreamConfig, kept_floats, run_method
from morpho.sims.stream_task import StreamOnTrainer
from morpho.sims.streams import build_stream

NET = NetworkConfig(d_cell=8, level_sizes=(2, 2, 2), input_dim=8, readout="last", vocab_size=10)
CFG = StreamConfig(network=NetworkConfig(d_cell=8, level_sizes=(2, 2, 2)), max_train=30)


def _data(n: int = 40, d: int = 6, k: int = 3, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    y = F.one_hot(torch.randint(0, k, (n,), generator=gen), k).double()
    return x, y


def test_sums_are_additive_and_solve_is_the_closed_form_ridge() -> None:
    x, y = _data()
    whole, parts = RidgeStats(6, 3), RidgeStats(6, 3)
    whole.add(x, y)
    for a, b in zip(x.split(7), y.split(7), strict=True):
        parts.add(a, b)
    torch.testing.assert_close(parts.gram, whole.gram)
    torch.testing.assert_close(parts.cross, whole.cross)
    assert parts.count == whole.count == 40
    lam = 0.1 * float((x * x).sum(0).mean())
    expected = torch.linalg.solve(x.T @ x + lam * torch.eye(6, dtype=torch.float64), x.T @ y)
    torch.testing.assert_close(whole.solve(0.1), expected)


def test_relative_ridge_makes_predictions_independent_of_the_feature_scale() -> None:
    x, y = _data()
    a, b = RidgeStats(6, 3), RidgeStats(6, 3)
    a.add(x, y)
    b.add(1000.0 * x, y)
    torch.testing.assert_close(x @ a.solve(0.01), 1000.0 * x @ b.solve(0.01))


def test_bad_shapes_and_ridges_fail_in_one_line() -> None:
    stats = RidgeStats(6, 3)
    with pytest.raises(ValueError, match=r"expected features of shape \(n, 6\)"):
        stats.add(torch.zeros(4, 5), torch.zeros(4, 3))
    with pytest.raises(ValueError, match="expected ridge > 0"):
        stats.solve(0.0)
    with pytest.raises(ValueError, match="expected an expansion width > 0"):
        RandomExpansion(6, 0, seed=0)


def _class_stream(order: list[int] | None = None, scenario: str = "class") -> StreamOnTrainer:
    stream = build_stream("split-digits", scenario, max_train=30)
    stream = replace(stream, tasks=stream.tasks[:3])
    if order is not None:
        stream = replace(stream, tasks=tuple(stream.tasks[i] for i in order))
    return StreamOnTrainer(stream, stream, steps_per_task=1)


def _fit(learner: AnalyticLearner) -> AnalyticLearner:
    for t in range(learner.stream.n_tasks):
        learner.fit_task(t)
    return learner


@pytest.mark.parametrize("expand", [0, 64])
def test_the_head_after_the_stream_is_the_joint_fit_in_any_task_order(expand: int) -> None:
    forward = _fit(AnalyticLearner(_class_stream(), NET, 1e-4, expand=expand))
    backward = _fit(AnalyticLearner(_class_stream([2, 0, 1]), NET, 1e-4, expand=expand))
    torch.testing.assert_close(forward.ridge_weight, backward.ridge_weight)
    # the same head from one fit on every task's data at once
    stream = _class_stream().stream
    x = torch.cat([k.x_train for k in stream.tasks])
    y = torch.cat([k.y_train for k in stream.tasks])
    joint = RidgeStats(*forward.ridge_weight.shape)
    joint.add(forward.features(x), F.one_hot(y, 10))
    torch.testing.assert_close(forward.ridge_weight, joint.solve(1e-4))


def test_the_tissue_is_never_modified_and_no_example_is_kept() -> None:
    task = _class_stream()
    learner = AnalyticLearner(task, NET)
    before = {k: v.detach().clone() for k, v in learner.net.state_dict().items()}
    _fit(learner)
    after = learner.net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not hasattr(learner, "optimizer")  # closed form: nothing to step
    pixels = task.stream.tasks[0].x_train.shape[1:]
    assert learner.ridge_stats is not None
    kept = [learner.ridge_stats.gram, learner.ridge_stats.cross, learner.ridge_weight]
    assert all(t.shape[-2:] != pixels for t in kept)


def test_with_a_task_id_old_answers_never_change() -> None:
    cfg = replace(CFG, scenario="task")
    from morpho.sims.stream_run import build_task_stream

    result = run_method(cfg, "analytic", build_task_stream(cfg), 0)
    matrix = result["matrix"]
    for j in range(len(matrix)):
        assert len({round(row[j], 9) for row in matrix[j:]}) == 1, j
    assert result["bwt"] == 0.0 and result["memory_floats"] == 0


def test_pooled_readout_solves_over_the_readout_width() -> None:
    learner = AnalyticLearner(_class_stream(), NET, cell_readout=False)
    assert learner.ridge_weight.shape == (8, 10)
    cells = AnalyticLearner(_class_stream(), NET)
    assert cells.ridge_weight.shape == (6 * 8 * 8, 10)


def test_a_language_stream_is_refused() -> None:
    stream = build_stream("lang-domains", "domain", lang_chars=4000)
    task = StreamOnTrainer(stream, stream, steps_per_task=1)
    with pytest.raises(ValueError, match="analytic heads need an image stream; got a lm stream"):
        AnalyticLearner(task, NET)


def test_random_features_keep_the_analytic_floats_and_solve_the_same_ridge() -> None:
    """random-features: a fixed random ReLU layer over the raw pixels, as wide as the
    analytic features (equal floats), under the same closed-form head (joint fit law)."""
    task = _class_stream()
    analytic = _fit(AnalyticLearner(task, NET))
    rf = _fit(RandomFeaturesLearner(task, NET))
    assert rf.memory_floats() == analytic.memory_floats()
    assert rf.ridge_weight.shape == analytic.ridge_weight.shape
    stream = task.stream
    x = torch.cat([k.x_train for k in stream.tasks])
    y = torch.cat([k.y_train for k in stream.tasks])
    assert rf.expansion is not None
    expected = RidgeStats(*rf.ridge_weight.shape)
    expected.add(rf.expansion(x.flatten(1)), F.one_hot(y, 10))
    torch.testing.assert_close(rf.ridge_weight, expected.solve(1e-4))
    fit, val = validation_split(build_stream("split-digits", "class", max_train=30), 0.2)
    assert kept_floats(CFG, StreamOnTrainer(fit, val, 1)) == analytic.memory_floats()
