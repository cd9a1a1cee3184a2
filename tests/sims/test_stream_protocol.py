"""Laws of the stream protocol on the one trainer: equal optimizer steps and batch sizes
for every method, replay as a task wrapper that fills a share of each batch, a validation
split carved from training data that tuning alone reads, ``--config`` through grow's
loader, paired differences against replay, replay at the analytic learner's floats, the
EWC penalty by hand, a registered method and a registered task stream run by name."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook
from typer.testing import CliRunner

from morpho.callbacks import Callback
from morpho.cli import app
from morpho.config import load_toml
from morpho.network import NetworkConfig
from morpho.rundir import read_jsonl
from morpho.sims.cl_methods import CL_METHODS, EWC, CLMethod, MethodContext
from morpho.sims.stream_commands import stream_config
from morpho.sims.stream_results import add_paired_differences, validation_split
from morpho.sims.stream_run import (
    LearnConfig,
    StreamConfig,
    build_task_stream,
    equal_float_memory,
    kept_floats,
    plain_config,
    run_method,
    run_stream,
    tune_method,
)
from morpho.sims.stream_task import ReplayTask, StreamOnTrainer
from morpho.sims.streams import build_stream
from morpho.tasks import TASKS
from morpho.terms import StepContext


def tiny(**kw) -> StreamConfig:
    cfg = StreamConfig(max_train=40, network=NetworkConfig(d_cell=8, level_sizes=(2, 2, 2)))
    train = replace(cfg.train, batch_size=8)
    learn = LearnConfig(epochs=1, steps=4, joint_steps=6)
    return replace(cfg, **{"train": train, "learn": learn, **kw})


class Sizes(Callback):
    def __init__(self) -> None:
        self.sizes: set[int] = set()

    def on_step_end(self, trainer, step, result) -> None:
        self.sizes.add(len(result.batch[0]))


@pytest.mark.parametrize("scenario", ["class", pytest.param("task", marks=pytest.mark.slow)])
def test_every_method_takes_the_same_steps_of_the_same_batch_size(scenario: str) -> None:
    """Optimizer steps counted by a global hook (EWC's Fisher pass takes none); every
    training step sees ``batch_size`` examples; the closed-form methods take no step;
    joint takes its converged budget (``joint_steps`` a task)."""
    cfg = tiny(scenario=scenario, tasks=2, stream="permuted-digits", max_train=24)
    counts, sizes = {}, {}
    for name in CL_METHODS.names():
        task = build_task_stream(cfg)
        calls = [0]
        hook = register_optimizer_step_post_hook(
            lambda *_, calls=calls: calls.__setitem__(0, calls[0] + 1)
        )
        spy = Sizes()
        try:
            result = run_method(cfg, name, task, 0, callbacks=(spy,))
        finally:
            hook.remove()
        counts[name], sizes[name] = calls[0], spy.sizes
        assert result["steps"] == calls[0]
    closed = {"analytic", "analytic-no-cell-readout", "random-features"}
    assert {counts[k] for k in closed} == {0}
    assert counts["joint"] == 6 * 2
    gradient = {counts[k] for k in counts if k not in closed | {"joint"}}
    assert gradient == {4 * 2}, counts
    assert all(s == {8} for k, s in sizes.items() if k not in closed), sizes


def test_replay_fills_the_batch_it_shares_with_new_examples() -> None:
    stream = build_stream("split-digits", "class", max_train=40)
    inner = StreamOnTrainer(stream, stream, steps_per_task=3)
    task = ReplayTask(inner, per_class=5, share=0.5, seed=0)
    gen = torch.Generator().manual_seed(0)
    task.at_step(2)
    assert not task.memory and task.batch("train", 8, 8, gen)[0].shape == (8, 8, 8)
    task.at_step(3)  # task 0 ended: five of each of its classes stored
    assert sorted(task.memory[0][1].flatten().tolist()) == [0] * 5 + [1] * 5
    x, y = task.batch("train", 8, 8, gen)
    assert len(x) == 8 and int((y >= 2).sum()) == 4  # half new, half from the memory
    assert task.memory_floats() == 10 * 64


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


def test_tuning_reads_the_validation_split_only(monkeypatch) -> None:
    """Poisoning the test split changes nothing in the trials or the choice."""
    cfg = tiny(methods=("ewc",), stream="permuted-digits", tasks=2)
    monkeypatch.setitem(
        CL_METHODS._items,
        "ewc",
        replace(CL_METHODS.get("ewc"), grid={"learn.ewc_lambda": (10.0, 1e4)}),
    )
    chosen, trials = tune_method(cfg, "ewc", echo=lambda _: None)
    build = build_stream

    def poisoned(*a, **kw):
        s = build(*a, **kw)
        noise = lambda k: replace(k, x_test=torch.rand_like(k.x_test))  # noqa: E731
        return replace(s, tasks=tuple(noise(k) for k in s.tasks))

    monkeypatch.setattr("morpho.sims.stream_run.build_stream", poisoned)
    chosen_p, trials_p = tune_method(cfg, "ewc", echo=lambda _: None)
    assert len(trials) == 2 and (chosen, trials) == (chosen_p, trials_p)
    assert set(chosen) == {"learn.ewc_lambda"}
    # and the final scores do read the (poisoned) test split
    clean = run_method(cfg, "ewc", build_task_stream(cfg), 0)
    monkeypatch.undo()
    assert clean["matrix"] != run_method(cfg, "ewc", build_task_stream(cfg), 0)["matrix"]


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
    cfg = tiny()
    task = build_task_stream(cfg)
    dim = 6 * 8 * 8  # every one of 6 cells at every one of 8 rows, 8 channels
    floats = dim * (dim + 1) // 2 + dim * 10
    assert kept_floats(cfg, task) == floats
    assert equal_float_memory(cfg, task) == floats // 10 // 64
    result = run_method(cfg, "analytic", task, 0)
    assert result["memory_floats"] == floats and result["steps"] == 0
    replayed = run_method(cfg, "replay-floats", build_task_stream(cfg), 0)
    assert replayed["memory_floats"] <= floats
    task_il = replace(cfg, scenario="task")
    assert run_method(task_il, "analytic", build_task_stream(task_il), 0)["memory_floats"] == 0


def test_the_ewc_penalty_is_half_lambda_fisher_times_squared_drift() -> None:
    cfg = tiny()
    ctx = MethodContext(build_task_stream(cfg), replace(cfg.learn, ewc_lambda=3.0), 0)
    ewc = EWC(ctx)
    net = torch.nn.Linear(2, 2)
    ewc.weight = {k: torch.full_like(p, 2.0) for k, p in net.named_parameters()}
    ewc.anchor = {k: p.detach().clone() for k, p in net.named_parameters()}
    step = StepContext(net, None, (torch.zeros(1), torch.zeros(1)), 0, torch.Generator())
    assert float(ewc.loss(step)) == 0.0  # at the anchor
    with torch.no_grad():
        net.weight += 0.5
    assert float(ewc.loss(step)) == pytest.approx(0.5 * 3.0 * 2.0 * 4 * 0.25)


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


def test_config_round_trips_and_runs_are_run_directories(tmp_path) -> None:
    cfg_file = tmp_path / "s.toml"
    cfg_file.write_text(
        'stream = "permuted-digits"\ntasks = 2\nmax_train = 24\nmethods = ["naive", "replay"]\n'
        "seeds = 3\n[learn]\nepochs = 1\n[network]\nd_cell = 8\nlevel_sizes = [2, 2, 2]\n"
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
    given = stream_config(cfg_file, {"seeds": 2, "learn": {}})
    assert plain_config(written) == plain_config(given)  # the growth table resolved
    assert replace(written, growth=given.growth) == given
    assert load_toml(out / "config.toml")["learn"]["epochs"] == 1
    for name in ("naive", "replay"):  # one trainer run directory per (method, seed)
        for seed in range(2):
            run = out / "runs" / f"{name}-seed{seed}"
            rows = [m for m in read_jsonl(run / "metrics.jsonl") if m["kind"] == "stream_eval"]
            r = res["methods"][name]["seeds"][seed]
            assert [m["scores"] for m in rows] == r["matrix"]
            assert json.loads((run / "summary.json").read_text())["steps"] == r["steps"]
            assert (run / "checkpoints" / "final.pt").exists()


def test_a_third_party_method_and_task_stream_run_by_name(tmp_path, monkeypatch) -> None:
    """A method registered in CL_METHODS and a task stream registered in TASKS: the driver
    takes both by name, as ``morpho grow`` takes a rule and a task."""
    base = tiny(stream="permuted-digits", tasks=2)

    class MyStream(StreamOnTrainer):
        def __init__(self) -> None:
            fit, val = validation_split(
                build_stream("permuted-digits", "class", 2, max_train=24), 0.2
            )
            super().__init__(fit, val, steps_per_task=3)

    seen: list[int] = []

    class Count(Callback):
        def on_step_end(self, trainer, step, result) -> None:
            seen.append(step)

    monkeypatch.setitem(TASKS._items, "my-stream", MyStream)
    monkeypatch.setitem(
        CL_METHODS._items, "counted", CLMethod("counted", parts=lambda c: [Count()])
    )
    cfg = replace(base, stream="my-stream", methods=("counted",))
    res = run_stream(cfg, tmp_path / "s", echo=lambda _: None)
    assert seen == list(range(1, 7)) and res["tasks"] == ["perm0", "perm1"]
    with pytest.raises(ValueError, match="unknown continual-learning method 'nope'"):
        replace(base, methods=("nope",))
    monkeypatch.setitem(TASKS._items, "flat", object)
    with pytest.raises(ValueError, match="task 'flat' is not a task stream"):
        build_task_stream(replace(base, stream="flat"))


@pytest.mark.parametrize("method", ["naive", "analytic"])
def test_a_28_by_28_stream_reads_its_rows_through_the_adapter(method: str) -> None:
    """split-mnist's images are 28 rows of 28 pixels: the network is sized from the stream."""
    cfg = tiny(stream="split-mnist", max_train=16)
    task = build_task_stream(cfg)
    assert (task.seq_len, task.input_dim) == (28, 28)
    matrix = run_method(cfg, method, task, 0)["matrix"]
    assert len(matrix) == 5 and all(len(row) == 5 for row in matrix)
    assert all(0.0 <= a <= 100.0 for row in matrix for a in row)


def test_closed_form_methods_are_refused_on_a_language_stream(tmp_path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "stream",
            "--stream",
            "lang-domains",
            "--methods",
            "random-features",
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert result.exit_code == 2 and "solves image heads in closed form" in result.output
    assert not (tmp_path / "o").exists()


def test_tuning_on_a_language_stream_sweeps_knobs_the_gradient_learner_reads(monkeypatch) -> None:
    """Every grid point changes the validation score on a language stream: the learning
    rate is among the knobs tuned, not a setting the learner ignores."""
    cfg = tiny(stream="lang-domains", scenario="domain", learn=LearnConfig(steps=2))
    assert "train.lr" in CL_METHODS.get("naive").grid
    _, trials = tune_method(cfg, "naive", echo=lambda _: None)
    scores = [tr["val_avg"] for tr in trials]
    assert len(scores) == 3 and len(set(scores)) == 3, scores
