"""The class-incremental image streams as one ``morpho grow`` task: training batches follow
the step through the class pairs (set by the trainer before every batch, so a resumed run
draws where an uninterrupted one would), evaluation covers every class."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import Crash, run_lines
from typer.testing import CliRunner

from morpho.callbacks import Callback
from morpho.cli import app
from morpho.config import RunConfig
from morpho.grow import grow, resume
from morpho.sims.images import SplitDigitsTask
from morpho.tasks import TASKS


def test_training_batches_follow_the_step_through_the_pairs() -> None:
    task = SplitDigitsTask(steps_per_task=10)
    gen = torch.Generator().manual_seed(0)
    for step, pair in [(0, {0, 1}), (9, {0, 1}), (10, {2, 3}), (45, {8, 9}), (999, {8, 9})]:
        task.at_step(step)
        _, y = task.batch("train", 64, task.seq_len, gen)
        assert set(y.flatten().tolist()) <= pair and len(set(y.flatten().tolist())) == 2
    ys = torch.cat([y for _, y in task.eval_batches(0, 0, task.seq_len)])
    assert set(ys.flatten().tolist()) == set(range(10))  # evaluation: every class


def test_split_tasks_load_by_name_and_refuse_a_negative_length() -> None:
    assert TASKS.get("split-digits") is SplitDigitsTask
    assert SplitDigitsTask().steps_per_task == 120  # a fifth of the digits preset's steps
    with pytest.raises(ValueError, match="steps_per_task must be >= 0; got -1"):
        SplitDigitsTask(steps_per_task=-1)


class _Labels(Callback):
    """Records the classes of every training batch, by step."""

    def __init__(self) -> None:
        self.seen: dict[int, set[int]] = {}

    def on_step_end(self, trainer, step, result) -> None:
        self.seen[step] = set(result.batch[1].flatten().tolist())


def test_a_crashed_stream_run_resumes_into_the_same_pairs_and_logs(tmp_path) -> None:
    """Crash mid-stream (inside the third pair), resume: the same metrics and events as a
    run done in one go, so the resumed run trained on the same pairs at the same steps."""
    cfg = RunConfig.preset("digits").merged(
        {
            "task": "split-digits",
            "task_options": {"steps_per_task": 6},
            "train": {"steps": 30, "eval_every": 10, "log_every": 2, "checkpoint_every": 12},
            "growth": {"start": 4, "interval": 4},
        }
    )
    torch.set_num_threads(1)
    whole, crashed = tmp_path / "whole", tmp_path / "crashed"
    labels = _Labels()
    summary = grow(cfg, whole, callbacks=[labels])
    for step, seen in labels.seen.items():  # the trainer moved the task on with the step
        first = 2 * min((step - 1) // 6, 4)  # on_step_end counts the steps done
        assert seen <= {first, first + 1}, (step, seen)
    assert summary["task"]["steps_per_task"] == 6 and 0.0 <= summary["val_acc"] <= 1.0
    with pytest.raises(KeyboardInterrupt):
        grow(cfg, crashed, callbacks=[Crash(15)])
    resume(crashed)
    for name in ("metrics.jsonl", "events.jsonl"):
        assert run_lines(whole, name) == run_lines(crashed, name), name


def test_grow_takes_the_stream_from_the_command_line(tmp_path) -> None:
    cfg = tmp_path / "s.toml"
    cfg.write_text("[task_options]\nsteps_per_task = 4\n[train]\nsteps = 8\neval_every = 8\n")
    out = tmp_path / "run"
    args = ["grow", "--task", "split-digits", "--config", str(cfg), "--quiet", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads((out / "summary.json").read_text())["task"]["pairs"][0] == [0, 1]
