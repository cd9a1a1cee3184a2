"""Data-parallel growth on 2 gloo processes (CPU): identical ranks, same run as 1 process."""

from __future__ import annotations

import json
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from conftest import ALL_ON, tiny_run

from morpho.config import RunConfig
from morpho.grow import grow
from morpho.rundir import read_jsonl
from morpho.trainer import Callback

TINY = tiny_run(40)


class _Dump(Callback):
    """Saves what a rank ended with: parameters, optimizer state, topology, events."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.events: list[dict] = []

    def on_edit(self, trainer, edit) -> None:
        self.events.append({"step": trainer.step, "kind": edit.kind, **edit.info})

    def on_train_end(self, trainer, summary) -> None:
        net, opt = trainer.net, trainer.optimizer
        torch.save(
            {
                "params": {k: v.detach().clone() for k, v in net.named_parameters()},
                "state": [
                    {k: v.clone() for k, v in opt.state[p].items()}
                    for g in opt.param_groups
                    for p in g["params"]
                ],
                "cell_ids": net.cell_ids(),
                "edge_ids": net.tissue.edge_id.tolist(),
                "events": self.events,
                "val_bpc": summary["val_bpc"],
            },
            self.path,
        )


def _worker(rank: int, world: int, port: int, folder: str, over: dict | None = None) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    try:
        grow(
            RunConfig.preset("small").merged(TINY).merged(over or {}),
            os.path.join(folder, "run"),
            callbacks=[_Dump(os.path.join(folder, f"rank{rank}.pt"))],
        )
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    two = tmp_path_factory.mktemp("dp2")
    mp.spawn(_worker, args=(2, _free_port(), str(two)), nprocs=2, join=True)
    one = tmp_path_factory.mktemp("dp1")
    torch.set_num_threads(1)
    grow(
        RunConfig.preset("small").merged(TINY),
        one / "run",
        callbacks=[_Dump(str(one / "rank0.pt"))],
    )
    load = lambda p: torch.load(p, weights_only=False)  # noqa: E731 - our own files
    return two, load(two / "rank0.pt"), load(two / "rank1.pt"), one, load(one / "rank0.pt")


def test_ranks_decide_the_same_events_and_stay_identical(runs):
    _, r0, r1, _, _ = runs
    assert r0["events"], "the run must grow"
    assert r0["events"] == r1["events"]
    assert r0["cell_ids"] == r1["cell_ids"] and r0["edge_ids"] == r1["edge_ids"]
    for name, value in r0["params"].items():
        assert torch.equal(value, r1["params"][name]), name
    for s0, s1 in zip(r0["state"], r1["state"], strict=True):
        assert s0.keys() == s1.keys()
        for key in s0:
            assert torch.equal(s0[key], s1[key]), key


def test_two_processes_match_one_process_with_the_same_global_batch(runs):
    two, r0, _, one, single = runs
    assert [e["kind"] for e in r0["events"]] == [e["kind"] for e in single["events"]]
    assert r0["cell_ids"] == single["cell_ids"]
    # float32 sums over 2 shards differ from sums over the whole batch in the last bits;
    # Adam turns that into ~1e-3 differences in rows whose gradients are near zero (new
    # edges born at strength 0) over 40 steps
    for name, value in single["params"].items():
        torch.testing.assert_close(r0["params"][name], value, rtol=1e-2, atol=1e-2)
    assert abs(r0["val_bpc"] - single["val_bpc"]) < 1e-3


def test_only_rank_zero_writes_the_run_directory(runs):
    two, _, _, one, _ = runs
    assert sorted(p.name for p in two.iterdir()) == ["rank0.pt", "rank1.pt", "run"]
    lines = read_jsonl(two / "run" / "events.jsonl")
    assert len(lines) == len({(e["step"], e["kind"], tuple(e["cells"])) for e in lines})
    assert json.loads((two / "run" / "summary.json").read_text())["steps"] == 40


def test_ranks_stay_identical_with_every_mechanism_on(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path), ALL_ON), nprocs=2, join=True)
    load = lambda p: torch.load(p, weights_only=False)  # noqa: E731 - our own files
    r0, r1 = load(tmp_path / "rank0.pt"), load(tmp_path / "rank1.pt")
    assert r0["events"] and r0["events"] == r1["events"]
    assert r0["cell_ids"] == r1["cell_ids"] and r0["edge_ids"] == r1["edge_ids"]
    for name, value in r0["params"].items():
        assert torch.equal(value, r1["params"][name]), name


def _rank_env(monkeypatch: pytest.MonkeyPatch, rank: int, world: int = 2) -> None:
    """The environment torchrun gives a process (no process group is started here)."""
    for name, value in (("RANK", rank), ("LOCAL_RANK", rank), ("WORLD_SIZE", world)):
        monkeypatch.setenv(name, str(value))

    def init_process_group(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("the process group was started before the refusal")

    monkeypatch.setattr(dist, "init_process_group", init_process_group)


REFUSALS = [
    (["--config", "bad.toml"], "stepz"),
    (["--task", "lnag"], "unknown task"),
    (["--seed", "99999999999999999999"], "--seed"),
    (["--config", "batch.toml"], "multiple of the 2 processes"),
]
if not torch.cuda.is_available():
    REFUSALS.append((["--device", "cuda"], "CUDA is not available"))


@pytest.mark.parametrize(("args", "fragment"), REFUSALS)
@pytest.mark.parametrize("rank", [0, 1])
def test_a_refusal_under_torchrun_is_one_line_on_rank_0_and_exit_2_everywhere(
    tmp_path, monkeypatch, args, fragment, rank
):
    from typer.testing import CliRunner

    from morpho.cli import app

    _rank_env(monkeypatch, rank)
    (tmp_path / "bad.toml").write_text("[train]\nstepz = 3\n")
    (tmp_path / "batch.toml").write_text("[train]\nbatch_size = 3\nsteps = 1\n")
    out = tmp_path / "run"
    args = [str(tmp_path / a) if a.endswith(".toml") else a for a in args]
    result = CliRunner().invoke(app, ["grow", "--quiet", "--out", str(out), *args])
    assert result.exit_code == 2, result.output
    assert not dist.is_initialized(), "refused before the process group"
    lines = result.output.strip().splitlines()
    if rank == 0:
        assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0]
    else:
        assert lines == [], "only rank 0 prints a refusal"
    assert not out.exists()
