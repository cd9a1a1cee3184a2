"""Laws of the stream protocol: equal optimizer steps and batch sizes for every method (sleep
inside the budget), a validation split carved from training data that tuning alone reads,
``--config`` through grow's loader, paired differences against replay, replay at equal
floats; and of morpho's parts that the protocol measures (plasticity floor, head
correction with its optimizer moments, a memory of feature Gaussians, not examples)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook
from typer.testing import CliRunner

from morpho.cli import app
from morpho.config import load_toml
from morpho.sims.analytic import AnalyticLearner, kept_floats
from morpho.sims.continual import LearnConfig, Replay
from morpho.sims.morpho_cl import MorphoCLConfig, MorphoLearner
from morpho.sims.stream_commands import stream_config
from morpho.sims.stream_run import (
    GRIDS,
    METHODS,
    StreamConfig,
    add_paired_differences,
    equal_float_memory,
    make_learner,
    run_method,
    run_stream,
    tune_method,
    validation_split,
)
from morpho.sims.streams import build_stream

TINY = LearnConfig(epochs=1, batch_size=8, d_cell=8, level_sizes=(2, 2, 2))


def _stream(scenario: str = "class"):
    return build_stream("split-digits", scenario, max_train=40)


@pytest.mark.parametrize("scenario", ["class", "task"])
def test_every_method_takes_the_same_steps_of_the_same_batch_size(scenario: str) -> None:
    """Optimizer steps counted by a global hook (morpho's sleep, EWC's Fisher pass and
    joint's single pass included); every training step sees ``batch_size`` examples.
    The closed-form methods take no optimizer step at all."""
    stream = _stream(scenario)
    stream = replace(stream, tasks=stream.tasks[:3])
    learn = replace(TINY, steps=4, joint_steps=6)
    counts: dict[str, int] = {}
    sizes: dict[str, set[int]] = {}
    analytic: dict[str, bool] = {}
    for name in METHODS:
        learner = make_learner(name, stream, learn, MorphoCLConfig(sleep_steps=2))
        calls = [0]
        hook = register_optimizer_step_post_hook(
            lambda *_, calls=calls: calls.__setitem__(0, calls[0] + 1)
        )
        step, seen, dreamt = learner.train_step, set(), []
        if isinstance(learner, MorphoLearner):  # its rehearsal: features drawn in the loss
            dream = learner._dream_loss
            learner._dream_loss = lambda n, d=dream, r=dreamt: r.append(n) or d(n)  # type: ignore[method-assign]

        def spy(t, x, y, h, step=step, seen=seen, dreamt=dreamt):
            dreamt.clear()
            out = step(t, x, y, h)
            seen.add(len(x) + (dreamt[-1] if dreamt else 0))
            return out

        learner.train_step = spy  # type: ignore[method-assign]
        try:
            run_method(learner, stream)
        finally:
            hook.remove()
        counts[name], sizes[name] = calls[0], seen
        analytic[name] = isinstance(learner, AnalyticLearner)
    closed = {"analytic", "analytic-no-cell-readout", "random-features"}
    assert {k for k, a in analytic.items() if a} == closed
    # joint is the upper bound at the converged budget (joint_steps a task), whatever the stream's
    assert counts["joint"] == 6 * len(stream.tasks)
    gradient = {counts[k] for k, a in analytic.items() if not a and k != "joint"}
    assert gradient == {4 * len(stream.tasks)}, counts
    assert {counts[k] for k, a in analytic.items() if a} == {0}, counts
    wrong = {k: s for k, s in sizes.items() if not s <= {learn.batch_size}}
    assert not wrong, wrong


def test_replay_fills_the_batch_it_shares_with_new_examples() -> None:
    stream = _stream()
    learner = Replay(stream, replace(TINY, steps=3))
    learner.fit_task(0, stream.tasks[0])
    new = []
    step = learner.train_step
    learner.train_step = lambda t, x, y, h: new.append(int((y >= 2).sum())) or step(t, x, y, h)  # type: ignore[method-assign]
    learner.fit_task(1, stream.tasks[1])
    assert new == [TINY.batch_size // 2] * 3  # half new, half from the memory


def test_validation_split_is_carved_from_train_stratified_and_fixed() -> None:
    stream = build_stream("split-digits", "class")
    fit, val = validation_split(stream, 0.2)
    again, _ = validation_split(stream, 0.2)
    for k, f, v, a in zip(stream.tasks, fit.tasks, val.tasks, again.tasks, strict=True):
        assert torch.equal(f.x_test, k.x_test) and torch.equal(f.x_train, a.x_train)
        assert len(f.x_train) + len(v.x_test) == len(k.x_train)
        rows = lambda x: {tuple(r.flatten().tolist()) for r in x}  # noqa: E731
        assert not rows(f.x_train) & rows(v.x_test)  # digits has no duplicate images
        for c in k.classes:
            share = float((v.y_test == c).sum() / (k.y_train == c).sum())
            assert 0.15 < share < 0.3


def test_tuning_reads_the_validation_split_only() -> None:
    """Poisoning the test split changes nothing in the trials or the choice."""
    stream = _stream()
    _, val = validation_split(stream, 0.25)
    noise = lambda k: replace(k, x_test=torch.rand_like(k.x_test), y_test=k.y_test.flip(0))  # noqa: E731
    poisoned = replace(stream, tasks=tuple(noise(k) for k in stream.tasks))
    _, val_p = validation_split(poisoned, 0.25)
    cfg = StreamConfig(methods=("ewc",), learn=replace(TINY, steps=2))
    chosen, trials = tune_method(cfg, "ewc", val, echo=lambda _: None)
    chosen_p, trials_p = tune_method(cfg, "ewc", val_p, echo=lambda _: None)
    assert len(trials) == len(GRIDS["ewc"]["learn.ewc_lambda"])
    assert (chosen, trials) == (chosen_p, trials_p)
    assert set(chosen) == {"learn.ewc_lambda"}


def test_paired_differences_against_replay_are_per_seed() -> None:
    seeds = lambda *a: {"seeds": [{"avg_accuracy": x} for x in a]}  # noqa: E731
    methods = {"replay": seeds(50.0, 60.0, 70.0), "analytic": seeds(55.0, 61.0, 80.0)}
    add_paired_differences(methods, True)
    vs = methods["analytic"]["vs_replay"]
    assert vs["per_seed"] == [5.0, 1.0, 10.0] and vs["mean"] == pytest.approx(16 / 3)
    assert vs["std"] == pytest.approx(torch.tensor([5.0, 1.0, 10.0]).std().item())
    assert methods["replay"]["vs_replay"] is None


def test_replay_at_equal_floats_fits_in_the_analytic_heads_sums() -> None:
    """The sums are the Gram triangle and the cross moments of cells × rows × d features."""
    stream = _stream()
    dim = sum(TINY.level_sizes) * 8 * TINY.d_cell  # every cell at every one of 8 rows
    floats = dim * (dim + 1) // 2 + dim * 10
    cl = MorphoCLConfig()
    assert equal_float_memory(stream, TINY, cl) == floats // 10 // 64
    learner = AnalyticLearner(stream, TINY, cl)
    run_method(learner, stream)
    assert learner.memory_floats() == floats == kept_floats(stream, TINY, cl)
    assert learner.step == 0
    assert learner.ridge_stats is not None and learner.ridge_stats.count == sum(
        len(k.x_train) for k in stream.tasks
    )
    task_il = AnalyticLearner(_stream("task"), TINY, cl)
    run_method(task_il, _stream("task"))
    assert task_il.memory_floats() == 0 and task_il.ridge_stats is None  # nothing kept


def test_replay_at_equal_floats_fits_in_morphos_gaussians() -> None:
    stream = _stream()
    d = TINY.d_cell
    per_class = d + d * (d + 1) // 2  # a Gaussian's mean and covariance triangle
    cl = MorphoCLConfig(analytic=False)
    assert equal_float_memory(stream, TINY, cl) == max(1, per_class // 64)
    learner = MorphoLearner(stream, replace(TINY, steps=4), cl)
    run_method(learner, stream)
    assert learner.memory_floats() == per_class * 10
    for g in learner.gaussians:  # feature statistics, nothing shaped like an input
        assert g.mean.shape == (d,) and g.chol.shape == (d, d)


def test_the_plasticity_floor_keeps_a_consolidated_row_learning() -> None:
    """A row of near-infinite viscosity moves by exactly ``floor`` of a fluid twin's update."""
    stream = _stream()
    task = stream.tasks[0]
    x, y, h = task.x_train[:8], task.y_train[:8], torch.zeros(8, dtype=torch.long)
    moved = {}
    for floor, viscosity in ((0.25, 1e9), (0.25, 0.0)):
        learner = MorphoLearner(
            stream, TINY, MorphoCLConfig(analytic=False, growth=False, plasticity_floor=floor)
        )
        learner.net.tissue.viscosity.fill_(viscosity)
        w0 = learner.net.banks["w_mlp1"].detach().clone()
        learner.train_step(0, x, y, h)
        moved[viscosity] = learner.net.banks["w_mlp1"].detach() - w0
    torch.testing.assert_close(moved[1e9], 0.25 * moved[0.0], rtol=1e-4, atol=1e-9)
    assert moved[1e9].abs().max() > 0


def test_head_correction_rescales_new_rows_and_their_moments() -> None:
    stream = _stream()
    learner = MorphoLearner(
        stream, replace(TINY, steps=4), MorphoCLConfig(analytic=False, sleep=False)
    )
    for t in range(2):
        learner.begin_task(t, stream.tasks[t])
        learner.fit_task(t, stream.tasks[t]) if t == 0 else None
    task = stream.tasks[1]
    for x, y, h in learner.batches(task.x_train, task.y_train, 0, steps=4):
        learner.train_step(1, x, y, h)
    w = learner.model.heads.weight
    state = {k: v.clone() for k, v in learner.optimizer.state[w].items()}
    norms = w.detach().norm(dim=1)
    gamma = float(norms[:2].mean() / norms[2:4].mean())
    learner._align_head(1, task)
    w2 = learner.model.heads.weight
    assert w2 is not w and w not in learner.optimizer.state
    new_norms = w2.detach().norm(dim=1)
    torch.testing.assert_close(new_norms[2:4].mean(), norms[:2].mean())
    torch.testing.assert_close(new_norms[4:], norms[4:])
    s2 = learner.optimizer.state[w2]
    torch.testing.assert_close(s2["exp_avg"][2:4], gamma * state["exp_avg"][2:4])
    torch.testing.assert_close(s2["exp_avg_sq"][2:4], gamma**2 * state["exp_avg_sq"][2:4])
    assert torch.equal(s2["exp_avg"][:2], state["exp_avg"][:2])


def test_config_file_bad_key_fails_in_one_line_and_writes_nothing(tmp_path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('methods = ["naive"]\n[learn]\nepochs = 1\nbogus = 2\n')
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["stream", "--config", str(bad), "--out", str(out)])
    assert result.exit_code == 2
    assert "unknown config key learn.'bogus'; expected one of: epochs" in result.output
    assert not out.exists()
    bad.write_text('budget = "endless"\n')
    result = CliRunner().invoke(app, ["stream", "--config", str(bad), "--out", str(out)])
    assert result.exit_code == 2 and "expected one of: short, converged" in result.output


def test_config_round_trips_and_flags_override_the_file(tmp_path) -> None:
    cfg_file = tmp_path / "s.toml"
    cfg_file.write_text(
        'stream = "permuted-digits"\ntasks = 2\nmax_train = 48\nmethods = ["naive", "replay"]\n'
        "seeds = 3\n[learn]\nepochs = 1\n"
    )
    out = tmp_path / "out"
    args = ["stream", "--config", str(cfg_file), "--seeds", "2", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    res = json.loads((out / "results.json").read_text())
    assert res["config"]["seeds"] == 2 and res["config"]["tasks"] == 2
    assert res["methods"]["naive"]["vs_replay"] is not None
    assert res["methods"]["naive"]["hyperparameters"] == {
        "tuned": False,
        "chosen": {},
        "trials": [],
    }
    written = stream_config(out / "config.toml", {"learn": {}})
    assert written == stream_config(cfg_file, {"seeds": 2, "learn": {}})
    assert load_toml(out / "config.toml")["learn"]["epochs"] == 1


@pytest.mark.parametrize(
    ("ablation", "parent", "trials"),
    [
        ("morpho-gradient-no-growth", "morpho-gradient", 12),
        ("analytic-no-cell-readout", "analytic", 5),
    ],
)
def test_ablations_take_their_parents_tuned_point(
    tmp_path, ablation: str, parent: str, trials: int
) -> None:
    cfg = StreamConfig(
        stream="permuted-digits",
        tasks=2,
        methods=(ablation, parent),
        max_train=24,
        tune=True,
        learn=replace(TINY, steps=2),
    )
    res = run_stream(cfg, tmp_path / "s", echo=lambda _: None)["methods"]
    tuned, taken = res[parent]["hyperparameters"], res[ablation]["hyperparameters"]
    assert len(tuned["trials"]) == trials and taken["trials"] == []
    assert taken["chosen"] == tuned["chosen"] and set(tuned["chosen"]) == set(GRIDS[parent])


@pytest.mark.parametrize("method", ["naive", "analytic"])
def test_a_28_by_28_stream_reads_its_rows_through_the_adapter(method: str) -> None:
    """split-mnist's images are 28 rows of 28 pixels: the adapter is sized from the stream."""
    stream = build_stream("split-mnist", "class", max_train=16)
    stream = replace(stream, tasks=stream.tasks[:2])
    learner = make_learner(method, stream, replace(TINY, steps=2), MorphoCLConfig(sleep_steps=1))
    result = run_method(learner, stream)
    assert learner.model.adapter.proj.in_features == 28
    assert learner.model.adapter.pos.shape[0] == 28
    matrix = result["matrix"]
    assert len(matrix) == 2 and all(len(row) == 2 for row in matrix)
    assert all(0.0 <= a <= 100.0 for row in matrix for a in row)


def test_closed_form_methods_are_refused_on_a_language_stream() -> None:
    stream = build_stream("lang-domains", "domain", lang_chars=4000)
    for name in ("analytic", "analytic-no-cell-readout", "random-features"):
        with pytest.raises(ValueError, match=f"method '{name}' solves image heads in closed"):
            make_learner(name, stream, TINY, MorphoCLConfig())


def test_tuning_on_a_language_stream_sweeps_knobs_the_gradient_learner_reads() -> None:
    """Every grid point of the gradient learner changes its validation score on a language
    stream (the learning rate is among its knobs): no sweep of a setting it ignores."""
    stream = build_stream("lang-domains", "domain", lang_chars=3000)
    stream = replace(stream, tasks=stream.tasks[:2])
    assert "learn.lr" in GRIDS["morpho-gradient"]
    cfg = StreamConfig(
        stream="lang-domains", methods=("morpho-gradient",), learn=replace(TINY, steps=2)
    )
    grid = {"learn.lr": (1e-3, 4e-3)}
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(GRIDS, "morpho-gradient", grid)
        _, trials = tune_method(cfg, "morpho-gradient", stream, echo=lambda _: None)
    scores = [tr["val_avg"] for tr in trials]
    assert len(scores) == 2 and scores[0] != scores[1], scores
