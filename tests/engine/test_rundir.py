"""Laws of run-directory ownership: one writer per directory (a lock naming its pid, free
again when the holder dies), ``--overwrite`` replaces the whole directory, a crash during an
overwrite leaves the old run or the new one whole, and files get the user's umask."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import tomllib
from typer.testing import CliRunner

from morpho.cli import app
from morpho.config import RunConfig
from morpho.files import dump_toml
from morpho.grow import grow
from morpho.rundir import LOCK, STAGING, RunDir, read_jsonl
from morpho.tissue import save_graphml, seed_tissue

TINY = {
    "network": {"d_cell": 8, "n_heads": 1, "mlp_ratio": 1, "level_sizes": [1, 3, 3, 1]},
    "train": {
        "steps": 12,
        "batch_size": 4,
        "seq_len": 16,
        "eval_every": 5,
        "log_every": 2,
        "eval_batches": 2,
        "warmup": 2,
    },
    "growth": {"interval": 4, "start": 4, "cooldown": 4, "max_cells": 14},
}
runner = CliRunner()


def _cfg(seed: int = 0, steps: int = 12) -> RunConfig:
    return (
        RunConfig.preset("small")
        .merged(TINY)
        .merged({"train": {"seed": seed, "steps": steps}, "network": {"seed": seed}})
    )


def _toml(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(dump_toml(TINY))
    return path


def _tree(path: Path) -> dict[str, str]:
    """Every file under ``path`` (the lock aside) with the digest of its bytes."""
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file() and p.name != LOCK
    }


def _holder(path: Path) -> subprocess.Popen:
    """A process that owns ``path`` (a fresh run directory) until it is killed."""
    code = textwrap.dedent(
        f"""
        import sys, time
        from morpho.rundir import RunDir
        run = RunDir({str(path)!r})
        run.create("task = 'lang'\\n")
        print("ready", flush=True)
        time.sleep(120)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def _refused(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def test_a_held_run_directory_refuses_grow_overwrite_and_resume_naming_the_pid(tmp_path):
    out = tmp_path / "run"
    proc = _holder(out)
    try:
        before = _tree(out)
        base = ["grow", "--quiet", "--steps", "2", "--config", str(_toml(tmp_path))]
        for extra in (["--out", str(out)], ["--out", str(out), "--overwrite"]):
            _refused(runner.invoke(app, [*base, *extra]), "in use by pid", str(proc.pid))
        _refused(runner.invoke(app, ["grow", "--resume", str(out)]), f"pid {proc.pid}")
        assert _tree(out) == before
    finally:
        proc.kill()
        proc.wait()
    # the holder died: its lock is stale and free; overwriting now works
    result = runner.invoke(app, [*base, "--out", str(out), "--overwrite"])
    assert result.exit_code == 0, result.output
    assert (out / "summary.json").is_file()


def test_two_concurrent_writers_cannot_both_proceed(tmp_path):
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "morpho",
        "grow",
        "--quiet",
        "--preset",
        "small",
        "--config",
        str(_toml(tmp_path)),
    ]
    procs = [
        subprocess.Popen(
            [*cmd, "--out", str(out), "--seed", str(seed)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (0, 1)
    ]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, _, err in results if code == 2)
    assert len(loser.strip().splitlines()) == 1 and "error: run directory" in loser, loser
    assert "pid" in loser or "just created" in loser or "not empty" in loser, loser
    winner_seed = tomllib.loads((out / "config.toml").read_text())["train"]["seed"]
    steps = [r["step"] for r in read_jsonl(out / "metrics.jsonl") if r["kind"] == "train"]
    assert len(steps) == len(set(steps)), "interleaved logs"
    reference = tmp_path / "reference"
    grow(_cfg(seed=winner_seed), reference)
    strip = lambda rs: [{k: v for k, v in r.items() if k != "tokens_per_s"} for r in rs]  # noqa: E731
    ours, ref = (
        strip(read_jsonl(out / "metrics.jsonl")),
        strip(read_jsonl(reference / "metrics.jsonl")),
    )
    assert len(ours) == len(ref)
    # one run's log, line for line (float rounding may differ with the thread count of the
    # process that ran it)
    for a, b in zip(ours, ref, strict=True):
        assert a.keys() == b.keys()
        for k in a:
            same = a[k] == b[k] if isinstance(a[k], str) else a[k] == pytest.approx(b[k], rel=1e-5)
            assert same, (k, a[k], b[k])


def test_overwrite_replaces_the_whole_directory(tmp_path):
    out = tmp_path / "run"
    grow(_cfg(steps=12), out)
    (out / "notes.txt").write_text("old")
    old_snaps = {p.name for p in (out / "snapshots").iterdir()}
    grow(_cfg(seed=1, steps=2), out, overwrite=True)
    assert not (out / "notes.txt").exists()
    new_snaps = {p.name for p in (out / "snapshots").iterdir()}
    assert new_snaps == {"step_00000000.npz", "step_00000002.npz"} != old_snaps
    assert not [p for p in tmp_path.iterdir() if STAGING in p.name], "staging left behind"


CRASH = """
import os, sys
import morpho.rundir as rd
from morpho.config import RunConfig
from morpho.grow import grow
from morpho.trainer import Callback

out, point, tiny = sys.argv[1], sys.argv[2], eval(sys.argv[3])
if point == "layout":  # dies while the new run is laid out beside the old one
    write = rd.atomic_write
    def dying_write(path, fn):
        if path.name == "config.toml":
            os._exit(9)
        write(path, fn)
    rd.atomic_write = dying_write
if point == "swap":  # dies right after the exchange, before the old run is removed
    exchange = rd._exchange
    def dying_exchange(a, b):
        exchange(a, b)
        os._exit(9)
    rd._exchange = dying_exchange
class Die(Callback):
    def on_step_end(self, trainer, step, loss):
        if point == "train" and step == 3:
            os._exit(9)
cfg = RunConfig.preset("small").merged(tiny).merged({"train": {"seed": 1, "steps": 6}})
grow(cfg, out, overwrite=True, callbacks=[Die()])
"""


@pytest.mark.parametrize("point", ["layout", "swap", "train"])
def test_a_crash_during_overwrite_leaves_the_old_or_the_new_run_whole(tmp_path, point):
    out = tmp_path / "run"
    grow(_cfg(steps=12), out)
    old = _tree(out)
    proc = subprocess.run(
        [sys.executable, "-c", CRASH, str(out), point, repr(TINY)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 9, proc.stderr
    seed = tomllib.loads((out / "config.toml").read_text())["train"]["seed"]
    if point == "layout":
        assert _tree(out) == old, "the old run must stay whole"
    else:  # the new run: its config, none of the old run's files
        assert seed == 1 and not (out / "summary.json").exists()
        steps = [int(p.stem.split("_")[1]) for p in (out / "snapshots").glob("*.npz")]
        assert all(s <= 3 for s in steps), steps  # the new run got no further than step 3
    # the next overwrite sweeps what the dead process left beside the run
    grow(_cfg(seed=2, steps=2), out, overwrite=True)
    assert not [p for p in tmp_path.iterdir() if STAGING in p.name]
    assert tomllib.loads((out / "config.toml").read_text())["train"]["seed"] == 2


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_files_get_the_users_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        out = tmp_path / "run"
        grow(_cfg(steps=2), out)
        save_graphml(seed_tissue([1, 2, 1]), tmp_path / "t.graphml")
    finally:
        os.umask(old)
    files = [
        out / "config.toml",
        out / "summary.json",
        out / "metrics.jsonl",
        out / "checkpoints" / "final.pt",
        *(out / "snapshots").glob("*.npz"),
        tmp_path / "t.graphml",
    ]
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o666 & ~umask, f


def test_resume_of_a_run_takes_its_lock_and_a_fresh_path_is_left_untouched(tmp_path):
    out = tmp_path / "run"
    RunDir(out)  # constructing only checks: nothing is written before create()
    assert not out.exists()
    (out).mkdir()
    (out / LOCK).write_text("999999999\n")  # a lock file left by a dead process
    run = RunDir(out)  # holds only a stale lock: counts as empty
    run.create("x = 1\n")
    assert (out / "config.toml").read_text() == "x = 1\n"
