"""Laws of the command line: ``morpho grow`` writes a complete run directory and learns;
bad input exits 2 with one line naming the choices and leaves nothing on disk."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from typer.testing import CliRunner

from morpho.cli import app

RUN_FILES = ("config.toml", "metrics.jsonl", "events.jsonl", "summary.json")


def _grow(out: Path, steps: int, *extra: str):
    args = [
        "grow",
        "--task",
        "lang",
        "--preset",
        "small",
        "--steps",
        str(steps),
        "--out",
        str(out),
        "--quiet",
        *extra,
    ]
    return CliRunner().invoke(app, args)


def _check_run(out: Path, steps: int) -> None:
    for name in RUN_FILES:
        assert (out / name).is_file(), f"missing {name}"
    assert list((out / "snapshots").glob("step_*.npz")), "no snapshot"
    assert list((out / "checkpoints").iterdir()), "no checkpoint"
    config = tomllib.loads((out / "config.toml").read_text())
    assert config["task"] == "lang" and config["train"]["steps"] == steps
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == steps and summary["val_bpc"] > 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    assert train[0]["step"] == 0 and train[-1]["step"] == steps - 1
    assert train[-1]["loss"] < train[0]["loss"] - 0.3, "the loss did not go down"
    assert any(r["kind"] == "eval" for r in records)


def test_grow_writes_a_run_directory_and_learns(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = _grow(out, 40)  # a short run; the 200-step run is marked slow
    assert result.exit_code == 0, result.output
    assert "val_bpc" in result.output
    _check_run(out, 40)


@pytest.mark.slow
def test_grow_200_steps(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = _grow(out, 200)
    assert result.exit_code == 0, result.output
    _check_run(out, 200)


def test_unknown_task_exits_2_with_the_choices_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["grow", "--task", "lnag", "--out", str(out), "--quiet"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: unknown task 'lnag'; expected one of:")
    assert "lang" in lines[0].split("expected one of:")[1]
    assert "Traceback" not in result.output
    assert not out.exists()


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--preset", "huge"], "unknown preset 'huge'; expected one of: small"),
        (["--steps", "-3"], "train.steps must be >= 0"),
        (["--corpus", "nope"], "unknown corpus 'nope'; expected one of: pydoc"),
    ],
)
def test_bad_options_exit_2_with_one_line(tmp_path: Path, args: list[str], needle: str) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["grow", "--out", str(out), "--quiet", *args])
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert needle in result.stderr
    assert not out.exists()


def test_bad_config_file_key_exits_2_naming_it(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[train]\nstepz = 3\n")
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["grow", "--config", str(cfg), "--out", str(out)])
    assert result.exit_code == 2 and "stepz" in result.stderr
    assert not out.exists()


def test_python_dash_m_morpho_help() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "morpho", "--help"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "grow" in proc.stdout and "Usage" in proc.stdout


def test_version() -> None:
    from morpho import __version__

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"morpho {__version__}"


def test_grow_help_shows_the_default_run_directory() -> None:
    result = CliRunner().invoke(app, ["grow", "--help"], terminal_width=200)
    assert "runs/<task>-N" in result.output


def test_help_texts_hold_no_tracker_words() -> None:
    import re

    for command in ("grow", "sample", "bench", "stream", "render", "plot", "export", "rules"):
        result = CliRunner().invoke(app, [command, "--help"], terminal_width=200)
        assert result.exit_code == 0, command
        assert not re.search(r"\bissue\b|issue-\d", result.output, re.I), command


def _help(command: str) -> str:
    result = CliRunner().invoke(app, [command, "--help"], terminal_width=300)
    assert result.exit_code == 0, result.output
    return " ".join(result.output.replace("│", " ").split())


def test_help_keeps_bracketed_text_and_lists_every_preset() -> None:
    from morpho.config import PRESETS
    from morpho.sims.lang import BENCH_PRESETS

    assert "[the task's own: lang wide" in _help("grow")
    assert "[learn], [network], [train] and [growth] tables" in _help("stream")
    bench = _help("bench")
    for name in (*PRESETS, *BENCH_PRESETS):
        assert f" {name}" in bench.split("--preset", 1)[1].split("--", 1)[0], name
