"""Progress in a log file: plain lines soon after the start, then every N seconds, with
step/total, loss, cells and time left; a bad interval refused before anything is written;
a stdout that fails stops the lines, never the run."""

from __future__ import annotations

import io

import pytest
from typer.testing import CliRunner

from morpho import progress
from morpho.cli import app
from morpho.config import RunConfig
from morpho.grow import grow

TINY = {
    "network": {"d_cell": 8, "n_heads": 1, "mlp_ratio": 1, "level_sizes": [1, 2, 1]},
    "train": {"steps": 4, "batch_size": 2, "seq_len": 16, "eval_batches": 1, "warmup": 1},
    "growth": {"enabled": False},
}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(progress.time, "monotonic", c)
    return c


def test_lines_come_first_early_then_every_interval_then_at_the_end(clock, capsys):
    with progress.LineBar(total=100, done=0, every=30.0) as bar:
        bar.update(2.5, 7, 1000.0)  # the first update: a line at once
        for _ in range(1, 60):
            bar.advance()
            clock.now += 1.0
            bar.update(2.0, 8, 1200.0)  # one a second: a line every 30 s
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "grow 0/100 loss 2.500 cells 7 1,000 tok/s"
    assert lines[1].startswith("grow 30/100 loss 2.000 cells 8 1,200 tok/s eta ")
    assert lines[1].endswith("eta 1m10s")  # 30 steps in 30 s, 70 to go
    assert len(lines) == 3 and lines[-1].startswith("grow 59/100")  # at 0 s, 30 s; the end


def test_a_failing_stdout_stops_the_lines_not_the_run(clock, monkeypatch):
    class Full(io.StringIO):
        def write(self, s: str) -> int:
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(progress.sys, "stdout", Full())
    with progress.LineBar(total=10, done=0, every=1.0) as bar:
        bar.update(1.0, None, 0.0)
        assert bar.every == 0.0  # no more lines
        clock.now += 5
        bar.update(1.0, None, 0.0)


def test_the_bar_is_rich_on_a_terminal_and_lines_elsewhere(monkeypatch, capsys):
    assert isinstance(progress.progress_bar(True, 10, 0), progress.LineBar)
    assert type(progress.progress_bar(False, 10, 0)) is progress.NoBar
    monkeypatch.setattr(progress.sys.stdout, "isatty", lambda: True)
    assert isinstance(progress.progress_bar(True, 10, 0), progress.RichBar)


@pytest.mark.parametrize("value", ["x", "-1", "nan", "inf"])
def test_a_bad_interval_is_refused_before_anything_is_written(tmp_path, monkeypatch, value):
    monkeypatch.setenv(progress.EVERY_ENV, value)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["grow", "--steps", "1", "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: {progress.EVERY_ENV} must be a number")
    assert not out.exists()


def test_grow_into_a_log_file_prints_progress_lines(tmp_path, monkeypatch):
    config = tmp_path / "tiny.toml"
    from morpho.files import dump_toml

    config.write_text(dump_toml(TINY))
    monkeypatch.setenv(progress.EVERY_ENV, "0.000001")  # a line at every log step
    args = ["grow", "--preset", "small", "--config", str(config), "--out", str(tmp_path / "r")]
    result = CliRunner().invoke(app, args)  # stdout is not a terminal here
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("grow ")]
    assert lines[0].startswith("grow 0/4 loss ") and "cells 4" in lines[0]
    assert lines[-1].startswith("grow 4/4 loss ")


def test_step_lines_print_a_bench_row_s_progress(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(progress.EVERY_ENV, "0.000001")
    grow(
        RunConfig.preset("small").merged(TINY),
        tmp_path / "r",
        callbacks=[progress.StepLines("gru")],
    )
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("gru ")]
    assert lines[0].startswith("gru 1/4 loss ") and lines[-1].startswith("gru 4/4 loss ")
