"""Task streams, morpho's continual learner and the ``morpho stream`` command.

Laws: a stream's tasks are disjoint as specified (classes, permutations, text spans, and
train vs test); viscosity, usage and routing fields travel with their cells through
split and remove; the asymmetric division preserves the network function; a viscous cell
barely moves; ``morpho stream`` runs a 2-task toy stream end to end in seconds.
"""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from morpho.apply import remove
from morpho.cli import app
from morpho.sims.continual import LearnConfig
from morpho.sims.morpho_cl import MorphoCLConfig, MorphoLearner
from morpho.sims.streams import (
    LANG_CHARS,
    build_stream,
    load_digit_splits,
    permutations,
)
from morpho.tissue import HIDDEN, load_snapshot

TINY = LearnConfig(d_cell=8, level_sizes=(1, 2, 2, 1), epochs=1, batch_size=8)


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


def _learner(**cl: object) -> MorphoLearner:
    stream = build_stream("split-digits", "task", max_train=16)
    return MorphoLearner(stream, TINY, MorphoCLConfig(analytic=False, **cl))  # the gradient learner


def test_viscosity_usage_and_route_travel_with_their_cells_through_split_and_remove() -> None:
    learner = _learner()
    t = learner.net.tissue
    t.viscosity = torch.arange(t.num_nodes).float() + 1.0
    t.usage = torch.arange(t.num_nodes).float() * 10
    before = dict(zip(t.cell_id.tolist(), t.viscosity.tolist(), strict=True))
    x = learner.stream.tasks[0].x_test[:4]
    head = torch.zeros(4, dtype=torch.long)
    learner.loss(0, x, learner.stream.tasks[0].y_test[:4], head)  # fills net.stats
    with torch.no_grad():
        out_before = learner.predict(x, head)
    learner.grow(1)
    with torch.no_grad():
        out_after = learner.predict(x, head)
    torch.testing.assert_close(out_after, out_before, atol=1e-5, rtol=1e-5)  # function kept
    t = learner.net.tissue
    daughters = t.parent >= 0
    assert int(daughters.sum()) == 2 * len(t.level.unique())
    assert set(t.task[daughters].tolist()) == {1}
    for row in daughters.nonzero()[:, 0].tolist():
        mother = int(t.parent[row])
        if int(t.route[row]) == 1:  # daughter B: fluid, routed to the new task
            assert t.viscosity[row] == 0 and t.usage[row] == 0
        else:  # daughter A keeps her mother's consolidation
            assert t.viscosity[row] == before[mother]
    for cid, v in before.items():
        if cid in t.cell_id.tolist():
            assert float(t.viscosity[learner.net.row_of(cid)]) == v
    victim = int(t.cell_id[(t.role == HIDDEN) & ~daughters][0])
    remove(learner.net, victim, optimizer=learner.optimizer)
    t = learner.net.tissue
    assert victim not in t.cell_id.tolist()
    for cid, v in before.items():
        if cid in t.cell_id.tolist():
            assert float(t.viscosity[learner.net.row_of(cid)]) == v


def test_routing_hides_cells_born_for_later_tasks_from_earlier_ones() -> None:
    learner = _learner()
    task = learner.stream.tasks[0]
    x, h0 = task.x_test[:4], torch.zeros(4, dtype=torch.long)
    learner.loss(0, x, task.y_test[:4], h0)  # fills net.stats for the surprise ratio
    learner.grow(1)
    with torch.no_grad():
        before = learner.predict(x, h0)
        net = learner.net
        new = (net.tissue.route == 1).nonzero()[:, 0]
        net.banks["strength"][torch.isin(net.tissue.edge_index[0], new)] = 0.5  # B learned
        net.banks["readout"][new] = 0.3
        torch.testing.assert_close(learner.predict(x, h0), before)  # task 0: B is hidden
        assert not torch.allclose(learner.model(x, h0), before)  # unrouted, B interferes
        h1 = torch.ones(4, dtype=torch.long)
        torch.testing.assert_close(learner.predict(x, h1), learner.model(x, h1))


def test_a_viscous_cell_barely_moves_while_a_fluid_one_learns() -> None:
    learner = _learner(growth=False, plasticity_floor=0.0)
    t = learner.net.tissue
    t.viscosity = torch.full((t.num_nodes,), 1e6)
    t.viscosity[0] = 0.0
    task = learner.stream.tasks[0]
    w0 = learner.net.banks["w_mlp1"].detach().clone()
    learner.train_step(0, task.x_train[:8], task.y_train[:8], torch.zeros(8, dtype=torch.long))
    moved = (learner.net.banks["w_mlp1"].detach() - w0).flatten(1).abs().amax(1)
    assert moved[0] > 1e-4
    assert bool((moved[1:] < 1e-8).all())


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
        "analytic,morpho-gradient,naive",
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
    for name in ("analytic", "morpho-gradient", "naive"):
        r = res["methods"][name]
        assert len(r["matrix"]) == 2 and len(r["params"]) == 2
        assert {"avg_accuracy", "bwt", "fwt", "forgetting", "cells"} <= set(r)
        assert (out / f"heatmap_{name}.png").stat().st_size > 0
    assert (out / "accuracy_per_task.png").stat().st_size > 0
    for name in ("analytic", "morpho-gradient"):
        snaps = sorted((out / "runs" / f"{name}-seed0" / "snapshots").glob("*.npz"))
        tissue, meta = load_snapshot(snaps[-1])
        assert meta["kind"] == "task_end" and meta["task"] == 1
    assert hasattr(tissue, "viscosity")  # the gradient learner's tissue fields
    events = (out / "runs" / "morpho-gradient-seed0" / "events.jsonl").read_text().splitlines()
    assert all(json.loads(e)["task"] == 1 for e in events), "growth only at the new task"
    assert set(tissue.task.tolist()) <= {0, 1}


def test_a_jump_of_the_loss_signals_a_new_task_once_per_cooldown() -> None:
    learner = _learner(jump_nats=0.2, jump_ratio=2.0, cooldown=5)
    fired = []
    for step, loss in enumerate([0.3] * 20 + [2.0, 2.1, 2.0] + [0.3] * 20 + [2.5]):
        learner.step = step
        learner._ce = torch.tensor(loss)
        if learner._task_changed():
            fired.append(step)
    assert fired == [20, 43]  # each jump once, not its aftermath


def test_stream_command_rejects_bad_names_in_one_line() -> None:
    result = CliRunner().invoke(app, ["stream", "--methods", "naive,ewk"])
    assert result.exit_code == 2
    assert "unknown method 'ewk'; expected one of: analytic" in result.output
    result = CliRunner().invoke(app, ["stream", "--scenario", "klass"])
    assert result.exit_code == 2 and "expected one of: task, domain, class" in result.output
