"""Runs that survive: exact resume, SIGKILL at random moments, non-finite guard."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import ALL_ON, Crash, run_lines, tiny_run

from morpho.config import RunConfig
from morpho.grow import grow, resume
from morpho.rundir import read_jsonl
from morpho.trainer import NonFiniteError

# a tiny growing run: checks every 5 steps from step 5, so events fall on both sides of
# every checkpoint
TINY = tiny_run(40, checkpoint_every=10)


def _cfg(**train) -> RunConfig:
    cfg = RunConfig.preset("small").merged(TINY)
    return cfg.merged({"train": train}) if train else cfg


def _assert_same_run(a: Path, b: Path) -> None:
    for name in ("metrics.jsonl", "events.jsonl"):
        assert run_lines(a, name) == run_lines(b, name), name
    sa = json.loads((a / "summary.json").read_text())
    sb = json.loads((b / "summary.json").read_text())
    for key in ("val_bpc", "best_val_bpc", "params", "cells", "edges", "edits", "train_flops"):
        assert sa[key] == sb[key], key


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The tiny run done in one go."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("ref") / "run"
    grow(_cfg(), out)
    assert run_lines(out, "events.jsonl"), "the tiny run must have growth events"
    return out


def test_resume_after_a_crash_writes_the_same_logs(reference, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        grow(_cfg(), out, callbacks=[Crash(27)])
    assert len(read_jsonl(out / "metrics.jsonl")) > 0 and not (out / "summary.json").exists()
    resume(out)
    _assert_same_run(reference, out)


def test_resume_from_a_mid_run_checkpoint_rewinds_the_logs(reference, tmp_path):
    out = tmp_path / "run"
    grow(_cfg(), out)
    (out / "checkpoints" / "final.pt").unlink()  # as if killed after step 30's checkpoint
    assert (out / "checkpoints" / "step_00000030.pt").exists()
    resume(out)
    _assert_same_run(reference, out)


def _finished_copy(reference: Path, tmp_path: Path) -> Path:
    import shutil

    out = tmp_path / "run"
    shutil.copytree(reference, out, ignore=shutil.ignore_patterns(".lock"))
    return out


def _cut(path: Path, n: int) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:-n])


@pytest.mark.parametrize("log", ["metrics.jsonl", "events.jsonl"])
def test_a_log_that_lost_its_tail_is_written_again_from_an_older_checkpoint(
    reference, tmp_path, log
):
    """Power loss cut the last 37 bytes (mid-line) of a finished run's log: the resume
    skips the checkpoints the log no longer reaches, starts from the newest it does, and
    writes the lost records again: no NUL byte, the run equal to the one done in one go."""
    out = _finished_copy(reference, tmp_path)
    _cut(out / log, 37)
    resume(out)
    for name in ("metrics.jsonl", "events.jsonl"):
        assert b"\x00" not in (out / name).read_bytes(), name
    _assert_same_run(reference, out)


def test_a_log_shorter_than_every_checkpoint_is_refused_untouched(reference, tmp_path):
    out = _finished_copy(reference, tmp_path)
    (out / "metrics.jsonl").write_bytes((out / "metrics.jsonl").read_bytes()[:100])
    with pytest.raises(ValueError, match=r"metrics.jsonl ends \d+ bytes before") as err:
        resume(out)
    assert "incomplete or corrupt" in str(err.value) and "--overwrite" in str(err.value)
    assert (out / "metrics.jsonl").stat().st_size == 100  # neither padded nor cut


def test_a_missing_events_log_is_named_as_missing(reference, tmp_path):
    from typer.testing import CliRunner

    from morpho.cli import app

    out = _finished_copy(reference, tmp_path)
    (out / "events.jsonl").unlink()
    result = CliRunner().invoke(app, ["grow", "--quiet", "--resume", str(out), "--steps", "50"])
    assert result.exit_code == 2, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("error: ") and "events.jsonl is missing" in last, last
    assert "incomplete or corrupt" in last and "free space" not in last, last
    assert not (out / "events.jsonl").exists()


def test_rewind_never_pads_a_short_log(tmp_path):
    from morpho.rundir import RunDir

    run = RunDir(tmp_path / "run")
    run.create("")
    (run.path / "metrics.jsonl").write_text('{"step": 0}\n{"st')
    with pytest.raises(ValueError, match="metrics.jsonl ends 4 bytes before"):
        run.rewind({"metrics.jsonl": 20}, 0)
    run.rewind({"metrics.jsonl": 12, "events.jsonl": 0}, 0)  # a partial last line goes
    assert (run.path / "metrics.jsonl").read_text() == '{"step": 0}\n'


def test_resume_refuses_a_finished_run_and_a_non_run(reference, tmp_path):
    with pytest.raises(ValueError, match="already finished 40 steps"):
        resume(reference)
    with pytest.raises(ValueError, match="not a morpho run directory"):
        resume(tmp_path)


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_loses_nothing(reference, tmp_path):
    """Kill a growing run three times at random moments (also mid-checkpoint); resume."""
    out = tmp_path / "run"
    config = tmp_path / "tiny.toml"
    import tomli_w

    config.write_text(tomli_w.dumps(TINY))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    base = [sys.executable, "-m", "morpho", "grow", "--quiet", "--seed", "0"]
    rng = random.Random(0)
    cmd = [*base, "--config", str(config), "--out", str(out)]
    kills = 0
    for _ in range(6):  # three kills mid-training, with a few tries to land them
        logged = _size(out / "metrics.jsonl")
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 120
        # wait until this process trains (it logged a new line and a checkpoint exists)
        while (
            time.time() < deadline
            and proc.poll() is None
            and (
                _size(out / "metrics.jsonl") <= logged
                or not list((out / "checkpoints").glob("*.pt"))
            )
        ):
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.4))  # a random moment, possibly inside a checkpoint
        proc.send_signal(signal.SIGKILL)
        kills += proc.wait() == -signal.SIGKILL
        if (out / "checkpoints" / "final.pt").exists() or kills == 3:
            break
        cmd = [*base, "--resume", str(out)]
    if not (out / "checkpoints" / "final.pt").exists():
        subprocess.run([*base, "--resume", str(out)], env=env, check=True)
    assert kills >= 2, "the kills must interrupt the run"
    _assert_same_run(reference, out)


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


class _PoisonedTrainerLoss:
    """Makes the loss NaN at the given steps (a non-finite injection)."""

    def __init__(self, steps: set[int]) -> None:
        self.steps = steps

    def wrap(self, trainer):
        original = trainer.loss

        def loss(x, y, capture=False):
            total, ce, out = original(x, y, capture)
            if trainer.step in self.steps:
                total = total * float("nan")
            return total, ce, out

        trainer.loss = loss


def test_nonfinite_steps_are_skipped_logged_and_a_streak_stops_the_run(tmp_path):
    from morpho.grow import build_network, build_task
    from morpho.rundir import RunDir
    from morpho.trainer import Trainer

    cfg = _cfg(steps=12, checkpoint_every=0, max_nonfinite=3)
    task = build_task(cfg)
    run = RunDir(tmp_path / "run")
    run.create("")
    trainer = Trainer(build_network(cfg, task.vocab_size), task, cfg.train, run=run)
    _PoisonedTrainerLoss({3, 4}).wrap(trainer)
    before = {}

    def spy_step(original=trainer.optimizer.step):
        before[trainer.step] = True
        return original()

    trainer.optimizer.step = spy_step
    trainer.fit()
    events = read_jsonl(run.path / "events.jsonl")
    assert [e["step"] for e in events if e["kind"] == "nonfinite"] == [3, 4]
    assert 3 not in before and 4 not in before and 5 in before  # skipped, then went on
    assert all(torch.isfinite(p).all() for p in trainer.net.parameters())

    run2 = RunDir(tmp_path / "run2")
    run2.create("")
    trainer = Trainer(build_network(cfg, task.vocab_size), task, cfg.train, run=run2)
    _PoisonedTrainerLoss(set(range(5, 12))).wrap(trainer)
    with pytest.raises(NonFiniteError, match="3 consecutive steps") as err:
        trainer.fit()
    saved = Path(str(err.value).rsplit("saved to ", 1)[1])
    from morpho.checkpoint import load_network

    net, payload = load_network(saved)
    assert payload["step"] == 7 and all(torch.isfinite(p).all() for p in net.parameters())


def test_same_seed_same_run_and_the_run_records_seed_config_and_versions(reference, tmp_path):
    out = tmp_path / "again"
    grow(_cfg(), out)
    _assert_same_run(reference, out)
    import tomllib

    config = tomllib.loads((out / "config.toml").read_text())
    assert config["train"]["seed"] == 0 and config["network"]["seed"] == 0
    assert config["growth"]["interval"] == 5 and "patience" in config["growth"]["mitosis"]
    versions = json.loads((out / "summary.json").read_text())["versions"]
    assert versions["torch"] == torch.__version__ and versions["python"]


def test_sync_free_guard_skips_exactly_logs_at_log_steps_and_stops_on_a_streak(tmp_path):
    """train.sync_free: the fused optimizer skips a non-finite step on the device — params
    and AdamW state bit-identical to before it — and the host learns at the next log step."""
    from morpho.grow import build_network, build_task
    from morpho.rundir import RunDir
    from morpho.trainer import Trainer

    cfg = _cfg(steps=12, checkpoint_every=0, max_nonfinite=3, sync_free=True, log_every=4)
    task = build_task(cfg)
    run = RunDir(tmp_path / "run")
    run.create("")
    trainer = Trainer(build_network(cfg, task.vocab_size), task, cfg.train, run=run)
    assert trainer.optimizer.defaults["fused"]
    _PoisonedTrainerLoss({5}).wrap(trainer)
    trainer.net.step = 0
    for _ in range(5):  # steps 0..4, then snapshot what step 5 must leave alone
        trainer.train_step()
        trainer.step += 1
    params = [p.detach().clone() for p in trainer.net.parameters()]
    state = [
        {k: v.clone() for k, v in trainer.optimizer.state[p].items()}
        for p in trainer.net.parameters()
    ]
    trainer.train_step()  # step 5: NaN loss, no host sync
    for p, before, st in zip(trainer.net.parameters(), params, state, strict=True):
        assert torch.equal(p.detach(), before)
        for k, v in st.items():
            assert torch.equal(trainer.optimizer.state[p][k], v), k
    trainer.step += 1
    assert read_jsonl(run.path / "events.jsonl") == []  # nothing known on the host yet
    trainer.fit()  # the next log step (8) reads the device counters
    events = [e for e in read_jsonl(run.path / "events.jsonl") if e["kind"] == "nonfinite"]
    assert [(e["step"], e["skipped_steps"], e["streak"]) for e in events] == [(8, 1, 0)]
    assert all(torch.isfinite(p).all() for p in trainer.net.parameters())

    run2 = RunDir(tmp_path / "run2")
    run2.create("")
    trainer = Trainer(build_network(cfg, task.vocab_size), task, cfg.train, run=run2)
    _PoisonedTrainerLoss(set(range(5, 12))).wrap(trainer)
    with pytest.raises(NonFiniteError, match="4 consecutive steps"):
        trainer.fit()  # read at log step 8: steps 5–8 skipped (≥ max_nonfinite = 3)
    assert trainer.step == 8


def test_resume_with_every_mechanism_on_writes_the_same_logs(tmp_path):
    """Monitors and mechanisms carry their state through a checkpoint (KNIFE S, Λ, RNGs)."""
    cfg = _cfg().merged(ALL_ON)
    ref = tmp_path / "ref"
    grow(cfg, ref)
    assert any("repr_entropy" in r for r in read_jsonl(ref / "metrics.jsonl"))
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        grow(cfg, out, callbacks=[Crash(27)])
    resume(out)
    _assert_same_run(ref, out)


SELF_SIGNAL = """
import os, signal, sys
from morpho import interrupt
step_end = interrupt.StopOnSignal.on_step_end
def on_step_end(self, trainer, step, loss):  # the signal arrives during step `at`
    if step == at and self.signum is None:
        os.kill(os.getpid(), getattr(signal, name))
    step_end(self, trainer, step, loss)
interrupt.StopOnSignal.on_step_end = on_step_end
name, at = sys.argv[1], int(sys.argv[2])
sys.argv = ["morpho", *sys.argv[3:]]
from morpho.cli import main
main()
"""


@pytest.mark.parametrize(("name", "at"), [("SIGINT", 13), ("SIGTERM", 10)])
def test_a_signal_checkpoints_prints_the_resume_command_and_resume_is_exact(
    reference, tmp_path, name, at
):
    """A run without --checkpoint-every stopped by Ctrl-C / SIGTERM (mid-interval, and on an
    eval step) can be resumed, and then logs what the run done in one go logs."""
    import tomli_w

    from morpho.cli import app

    out, config = tmp_path / "run", tmp_path / "tiny.toml"
    tiny = {**TINY, "train": {**TINY["train"], "checkpoint_every": 0}}
    config.write_text(tomli_w.dumps(tiny))
    args = [
        "grow",
        "--quiet",
        "--preset",
        "small",
        "--seed",
        "0",
        "--config",
        str(config),
        "--out",
        str(out),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", SELF_SIGNAL, name, str(at), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 128 + getattr(signal, name), proc.stderr
    assert f"continue with: morpho grow --resume {out}" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert list((out / "checkpoints").glob("step_*.pt")), "no checkpoint written"
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["grow", "--quiet", "--resume", str(out)])
    assert result.exit_code == 0, result.output
    _assert_same_run(reference, out)


@pytest.mark.parametrize(
    "flag",
    [
        ["--seed", "3"],
        ["--task", "digits"],
        ["--data", "x.txt"],
        ["--corpus", "stdlib"],
        ["--config", "not toml"],
        ["--preset", "base"],
        ["--out", "elsewhere"],
        ["--overwrite"],
    ],
)
def test_resume_refuses_a_flag_it_cannot_honour(reference, tmp_path, flag):
    from typer.testing import CliRunner

    from morpho.cli import app

    out = _finished_copy(reference, tmp_path)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".lock"}
    args = ["grow", "--quiet", "--resume", str(out), "--steps", "44", *flag]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {flag[0]} does not apply"), lines
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".lock"}
    assert after == before, "a refused resume must leave the run as it was"


def test_resume_applies_steps_checkpoint_every_and_a_repeated_seed(reference, tmp_path):
    import tomllib
    from typer.testing import CliRunner

    from morpho.cli import app

    out = _finished_copy(reference, tmp_path)
    args = ["--resume", str(out), "--steps", "46", "--checkpoint-every", "3", "--seed", "0"]
    result = CliRunner().invoke(app, ["grow", "--quiet", *args])
    assert result.exit_code == 0, result.output
    train = tomllib.loads((out / "config.toml").read_text())["train"]
    assert (train["steps"], train["checkpoint_every"]) == (46, 3)
    names = sorted(p.name for p in (out / "checkpoints").glob("step_*.pt"))
    assert names == ["step_00000042.pt", "step_00000045.pt"]
    assert max(r["step"] for r in read_jsonl(out / "metrics.jsonl")) == 46
