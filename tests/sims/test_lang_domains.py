"""Language domains as one ``morpho grow`` stream: batches follow the step through the
domains, the domain token of the task-incremental stream, per-domain evaluation, replay's
stored text, and the continual-learning matrix read back from a run directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from morpho.config import RunConfig
from morpho.grow import grow
from morpho.sims.cl_runs import domain_matrix, run_cl_figures
from morpho.sims.lang_domains import LangDomainsTask, LangDomainsTilTask
from morpho.sims.replay import TextMemory
from morpho.tasks import TASKS


def _files(tmp_path: Path) -> str:
    """Three domains of distinct characters: letters, digits, punctuation."""
    texts = {"a.txt": "abcdefgh " * 400, "b.txt": "0123456789\n" * 330, "c.txt": "+-*/=<>;" * 450}
    for name, text in texts.items():
        (tmp_path / name).write_text(text)
    return ",".join(str(tmp_path / n) for n in texts)


def _task(tmp_path: Path, cls: type = LangDomainsTask, **kw: object) -> LangDomainsTask:
    return cls(domains="", data=_files(tmp_path), val_chars=500, domain_chars=5000, **kw)


def test_training_batches_follow_the_step_through_the_domains(tmp_path: Path) -> None:
    task = _task(tmp_path, steps_per_domain=10)
    assert task.domains == ["a.txt", "b.txt", "c.txt"]
    gen = torch.Generator().manual_seed(0)
    for step, chars in [(0, "abcdefgh "), (9, "abcdefgh "), (10, "0123456789\n"), (99, "+-*/=<>;")]:
        task.at_step(step)
        x, y = task.batch("train", 8, 16, gen)
        assert set(task.decode(x.flatten())) <= set(chars)
        assert torch.equal(x[:, 1:], y[:, :-1])  # targets: the inputs shifted by one


def test_joint_batches_mix_every_domain(tmp_path: Path) -> None:
    task = _task(tmp_path, joint=True)
    x, _ = task.batch("train", 64, 8, torch.Generator().manual_seed(0))
    seen = set(task.decode(x.flatten()))
    assert {"a", "0", "+"} <= seen


def test_the_task_incremental_stream_starts_each_window_with_its_domain_token(
    tmp_path: Path,
) -> None:
    task = _task(tmp_path, LangDomainsTilTask, steps_per_domain=10)
    task.at_step(15)
    x, _ = task.batch("train", 4, 8, torch.Generator().manual_seed(0))
    assert x[:, 0].tolist() == [task.n_chars + 1] * 4
    firsts = [int(b[0][0, 0]) for b in task.eval_batches(1, 2, 8)]
    assert firsts == [task.n_chars, task.n_chars + 1, task.n_chars + 2]
    assert task.vocab_size > task.n_chars + 2


def test_evaluation_names_the_domain_of_each_batch(tmp_path: Path) -> None:
    task = _task(tmp_path)
    batches = task.eval_batches(2, 3, 8)
    assert task.eval_domains == ["a.txt"] * 2 + ["b.txt"] * 2 + ["c.txt"] * 2
    again = task.eval_batches(2, 3, 8)  # fixed windows
    assert all(torch.equal(p[0], q[0]) for p, q in zip(batches, again, strict=True))
    assert set(task.decode(batches[2][0].flatten())) <= set("0123456789\n")


def test_replay_keeps_the_fraction_of_each_finished_domain_and_mixes_it_in(
    tmp_path: Path,
) -> None:
    task = _task(tmp_path, steps_per_domain=10, replay=0.5, replay_share=0.5)
    task.at_step(25)
    assert len(task.memory) == 2
    train_a = len(task.splits[0][0])
    assert abs(task.memory.stored_chars() / 2 - 0.5 * train_a) <= 32  # 32 spans, rounded
    x, _ = task.batch("train", 8, 8, torch.Generator().manual_seed(0))
    assert set(task.decode(x[4:].flatten())) <= set("+-*/=<>;")  # the current domain
    assert not set(task.decode(x[:4].flatten())) & set("+-*/=<>;")  # replayed rows


def test_text_memory_refuses_windows_before_anything_is_stored() -> None:
    with pytest.raises(ValueError, match="the memory is empty"):
        TextMemory().windows(1, 8, torch.Generator())
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\]; got 0"):
        TextMemory().add(torch.arange(100), 0.0)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"steps_per_domain": 0}, "steps_per_domain must be >= 1; got 0"),
        ({"replay": 1.5}, r"replay must be in \[0, 1\]; got 1.5"),
        ({"replay_share": 1.0}, r"replay_share must be in \(0, 1\); got 1.0"),
        ({"val_chars": 3000}, "expected at least twice val_chars = 6000"),
    ],
)
def test_bad_options_name_what_was_expected(tmp_path: Path, kw: dict, message: str) -> None:
    opts = {"val_chars": 500, **kw}
    with pytest.raises(ValueError, match=message):
        LangDomainsTask(domains="", data=_files(tmp_path), domain_chars=5000, **opts)


def test_an_unknown_domain_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown language domain 'poetry'; expected one of"):
        LangDomainsTask(domains="poetry")
    assert TASKS.get("lang-domains") is LangDomainsTask
    assert TASKS.get("lang-domains-til") is LangDomainsTilTask


def test_a_run_logs_per_domain_bpc_whose_mean_is_val_bpc(tmp_path: Path) -> None:
    cfg = RunConfig.preset("small").merged(
        {
            "task": "lang-domains",
            "task_options": {
                "domains": "",
                "data": _files(tmp_path),
                "val_chars": 500,
                "domain_chars": 5000,
                "steps_per_domain": 4,
            },
            "network": {"d_cell": 8, "level_sizes": [1, 1], "n_heads": 2},
            "train": {"steps": 12, "eval_every": 4, "batch_size": 4, "seq_len": 16},
            "growth": {"enabled": False},
        }
    )
    grow(cfg, tmp_path / "run")
    domains, R = domain_matrix(tmp_path / "run")
    assert domains == ["a.txt", "b.txt", "c.txt"] and len(R) == 3
    figures = run_cl_figures(tmp_path / "run")
    assert figures["last_bpc"] == R[2][2]
    assert figures["bwt"] == pytest.approx(-((R[2][0] - R[0][0]) + (R[2][1] - R[1][1])) / 2)
    summary_bpc = json.loads((tmp_path / "run/summary.json").read_text())["val_bpc"]
    assert figures["avg_bpc"] == pytest.approx(summary_bpc, rel=1e-5)


def test_a_missing_file_is_named_before_any_domain_is_read(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--data file 'nope.txt' does not exist"):
        LangDomainsTask(data="nope.txt")  # the named domains would take seconds to read
