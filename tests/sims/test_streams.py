"""Task streams, morpho's continual learner and the ``morpho stream`` command.

Laws: a stream's tasks are disjoint as specified (classes, permutations, text spans, and
train vs test); ``morpho stream`` runs a 2-task toy stream end to end in seconds.
"""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from morpho.cli import app
from morpho.sims.streams import (
    LANG_CHARS,
    build_stream,
    load_digit_splits,
    permutations,
)
from morpho.tissue import load_snapshot


def _rows(x: torch.Tensor) -> set[bytes]:
    return {bytes(r) for r in (x * 16).round().to(torch.uint8).flatten(1).numpy()}


def test_split_digits_tasks_are_disjoint_class_pairs() -> None:
    s = build_stream("split-digits", "class")
    classes = [set(k.classes) for k in s.tasks]
    assert [sorted(c) for c in classes] == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    for k, c in zip(s.tasks, classes, strict=True):
        assert set(k.y_train.tolist()) == c and set(k.y_test.tolist()) == c
        assert not _rows(k.x_train) & _rows(k.x_test), "a test image is also a train image"
    assert sum(len(k.x_train) + len(k.x_test) for k in s.tasks) == 1797
    assert s.head_size == 10 and s.n_heads == 1


def test_scenarios_differ_only_in_the_readout() -> None:
    task, domain = build_stream("split-digits", "task"), build_stream("split-digits", "domain")
    assert [k.head for k in task.tasks] == [0, 1, 2, 3, 4] and task.n_heads == 5
    assert [k.head for k in domain.tasks] == [0] * 5 and domain.n_heads == 1
    for a, b in zip(task.tasks, domain.tasks, strict=True):
        assert torch.equal(a.x_train, b.x_train) and set(a.y_train.tolist()) == {0, 1}
    assert task.head_size == domain.head_size == 2


def test_permuted_digits_are_the_same_images_under_distinct_fixed_permutations() -> None:
    s = build_stream("permuted-digits", "class", n_tasks=3)
    x_train = load_digit_splits()[0]
    perms = permutations(3)
    assert torch.equal(perms[0], torch.arange(64))
    assert len({tuple(p.tolist()) for p in perms}) == 3
    for k, p in zip(s.tasks, perms, strict=True):
        assert torch.equal(k.x_train.flatten(1), x_train.flatten(1)[:, p])
    assert [set(k.y_train.tolist()) for k in s.tasks] == [
        set(range(10 * t, 10 * t + 10)) for t in range(3)
    ]
    assert s.head_size == 30
    assert build_stream("permuted-digits", "domain", n_tasks=3).head_size == 10


def test_lang_domains_train_and_test_are_disjoint_spans_of_each_domain(tmp_path) -> None:
    extra = tmp_path / "poem.txt"
    extra.write_text("roses are red, violets are blue\n" * 200)
    s = build_stream("lang-domains", "domain", data=[str(extra)], lang_chars=4000)
    assert [k.name for k in s.tasks] == ["pydoc", "stdlib", "poem.txt"]
    assert s.kind == "lm" and s.head_size == len(LANG_CHARS)
    for k in s.tasks:
        T = k.x_train.shape[1] - 1
        assert torch.equal(k.x_train[1:, 0], k.x_train[:-1, -1]), "train windows are one span"
        n_train, n_test = len(k.x_train) * T + 1, len(k.x_test) * T + 1
        assert n_train + n_test <= 4000, "train and test spans overlap"
    first = [set(k.x_train.flatten().tolist()) for k in s.tasks]
    assert first[0] != first[1] != first[2]
    with pytest.raises(ValueError, match="task or domain"):
        build_stream("lang-domains", "class")


def test_unknown_names_list_the_choices() -> None:
    with pytest.raises(ValueError, match="expected one of: split-digits, permuted-digits"):
        build_stream("split-digit")
    with pytest.raises(ValueError, match="expected one of: task, domain, class"):
        build_stream("split-digits", "clas")


def test_stream_command_runs_a_two_task_toy_stream(tmp_path) -> None:
    out = tmp_path / "stream"
    args = [
        "stream",
        "--stream",
        "permuted-digits",
        "--tasks",
        "2",
        "--scenario",
        "class",
        "--methods",
        "analytic,neurogenesis,naive",
        "--epochs",
        "2",
        "--max-train",
        "128",
        "--out",
        str(out),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "| analytic |" in result.output and "| naive |" in result.output
    res = json.loads((out / "results.json").read_text())
    for name in ("analytic", "neurogenesis", "naive"):
        r = res["methods"][name]
        assert len(r["matrix"]) == 2 and len(r["params"]) == 2
        assert {"avg_accuracy", "bwt", "fwt", "forgetting", "cells"} <= set(r)
        assert (out / f"heatmap_{name}.png").stat().st_size > 0
    assert (out / "accuracy_per_task.png").stat().st_size > 0
    for name in ("neurogenesis", "naive"):  # trainer runs: movie frames at start and end
        snaps = sorted((out / "runs" / f"{name}-seed0" / "snapshots").glob("*.npz"))
        _, meta = load_snapshot(snaps[-1])
        assert meta["kind"] == "end"
    assert not (out / "runs" / "analytic-seed0").exists()  # closed form: no trainer run


def test_stream_command_rejects_bad_names_in_one_line() -> None:
    result = CliRunner().invoke(app, ["stream", "--methods", "naive,ewk"])
    assert result.exit_code == 2
    assert "unknown continual-learning method 'ewk'; expected one of: analytic" in result.output
    result = CliRunner().invoke(app, ["stream", "--scenario", "klass"])
    assert result.exit_code == 2 and "expected one of: task, domain, class" in result.output
