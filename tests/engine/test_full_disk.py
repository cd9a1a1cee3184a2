"""A full disk: the error names the file, says whether the run can be resumed or should
be deleted; a completed, saved run whose only failure is printing to a full stdout exits 0."""

from __future__ import annotations

import builtins
import errno

import pytest
import tomli_w
from typer.testing import CliRunner

from morpho import rundir
from morpho.cli import app
from morpho.files import atomic_write

TINY = {
    "network": {"d_cell": 8, "n_heads": 1, "mlp_ratio": 1, "level_sizes": [1, 2, 1]},
    "train": {
        "steps": 8,
        "batch_size": 2,
        "seq_len": 16,
        "eval_batches": 1,
        "warmup": 1,
        "log_every": 1,
    },
    "growth": {"enabled": True, "interval": 2, "start": 2, "max_cells": 6},
}


def _full_after(monkeypatch: pytest.MonkeyPatch, name: str, records: int) -> None:
    """Appends to ``name`` fail with ENOSPC (and no file name, like a real write) after
    ``records`` records."""
    real_open, seen = builtins.open, [0]

    class FullFile:
        def __init__(self, f):  # type: ignore[no-untyped-def]
            self.f = f

        def __enter__(self):  # type: ignore[no-untyped-def]
            return self

        def __exit__(self, *exc):  # type: ignore[no-untyped-def]
            self.f.close()

        def write(self, text: str) -> int:
            seen[0] += 1
            if seen[0] > records:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.f.write(text)

    def fake_open(path, mode="r", *args, **kwargs):  # type: ignore[no-untyped-def]
        f = real_open(path, mode, *args, **kwargs)
        return FullFile(f) if str(path).endswith(name) and "a" in mode else f

    monkeypatch.setattr(rundir, "open", fake_open, raising=False)


def _grow(tmp_path, *extra: str):  # type: ignore[no-untyped-def]
    config = tmp_path / "tiny.toml"
    config.write_text(tomli_w.dumps(TINY))
    out = tmp_path / "run"
    args = ["grow", "--quiet", "--preset", "small", "--config", str(config), "--out", str(out)]
    return CliRunner().invoke(app, [*args, *extra]), out


def _line(result) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "(None)" not in lines[0]
    return lines[0]


def test_a_full_disk_after_a_checkpoint_names_the_file_and_the_resume(tmp_path, monkeypatch):
    _full_after(monkeypatch, "metrics.jsonl", 5)  # train logs at 0, 1, 2, 3, 4; then full
    result, out = _grow(tmp_path, "--checkpoint-every", "2")
    line = _line(result)
    assert "No space left on device" in line and repr(str(out / "metrics.jsonl")) in line
    assert f"morpho grow --resume {out}" in line
    monkeypatch.undo()  # space again: the resume the message names works
    resumed = CliRunner().invoke(app, ["grow", "--quiet", "--resume", str(out)])
    assert resumed.exit_code == 0, resumed.output
    assert (out / "summary.json").is_file()


def test_a_full_disk_before_any_checkpoint_says_delete(tmp_path, monkeypatch):
    _full_after(monkeypatch, "metrics.jsonl", 1)
    result, out = _grow(tmp_path, "--checkpoint-every", "0")
    line = _line(result)
    assert repr(str(out / "metrics.jsonl")) in line
    assert "cannot be resumed" in line and "delete it" in line and "--resume" not in line


def test_an_atomic_write_on_a_full_disk_names_its_file(tmp_path):
    def full(f):  # type: ignore[no-untyped-def]
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError) as err:
        atomic_write(tmp_path / "step_1.pt", full)
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(tmp_path / "step_1.pt")
    assert not list(tmp_path.iterdir())


def test_a_saved_run_that_cannot_print_its_summary_exits_0(tmp_path, monkeypatch):
    import typer

    real_echo = typer.echo

    def echo(message=None, file=None, nl=True, err=False, color=None):  # type: ignore[no-untyped-def]
        if not err:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_echo(message, file, nl, err, color)

    monkeypatch.setattr(typer, "echo", echo)
    result, out = _grow(tmp_path)
    assert result.exit_code == 0, result.output
    assert (out / "summary.json").is_file() and (out / "checkpoints" / "final.pt").is_file()
    assert "not printed: No space left on device" in result.output  # said on stderr
