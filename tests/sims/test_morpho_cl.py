"""Laws of morpho's continual learner on the engine: its neurogenesis is one engine edit
(parameters, Adam moments and tissue fields move together), its events follow the growth
schema of ``morpho grow``, and its run directories read like any run."""

from __future__ import annotations

import torch
from conftest import GROWTH_EVENT_KEYS

from morpho.rundir import RunDir, read_jsonl
from morpho.sims.continual import LearnConfig
from morpho.sims.morpho_cl import MorphoCLConfig, MorphoLearner
from morpho.sims.streams import build_stream

TINY = LearnConfig(epochs=1, batch_size=8, d_cell=8, level_sizes=(2, 2, 2))
# stream events carry the growth schema, and the stream learner's own statistics
GROWTH_SCHEMA = GROWTH_EVENT_KEYS | {"cell_stats", "n_cells", "n_edges", "n_params"}


def _trained_learner(run: RunDir | None = None) -> MorphoLearner:
    stream = build_stream("split-digits", "class", max_train=32)
    learner = MorphoLearner(stream, TINY, MorphoCLConfig(analytic=False), run)
    task = stream.tasks[0]
    for _ in range(3):  # Adam holds moments for every bank
        learner.train_step(0, task.x_train[:8], task.y_train[:8], torch.zeros(8, dtype=torch.long))
    return learner


def _edge_moments(learner: MorphoLearner) -> dict[tuple[int, int], torch.Tensor]:
    """(source id, target id) -> the Adam moments (exp_avg, exp_avg_sq) of that strength."""
    net = learner.net
    state = learner.optimizer.state[net.banks["strength"]]
    ends = net.tissue.cell_id[net.tissue.edge_index].T.tolist()
    both = torch.stack([state["exp_avg"], state["exp_avg_sq"]], 1)
    return {tuple(e): both[j].clone() for j, e in enumerate(ends)}


def test_growth_moves_moments_with_their_weights() -> None:
    """After a task-change division: daughter A's outgoing strengths carry the mother's
    moments exactly, daughter B's (strength 0) carry zero moments, incoming copies carry
    their source's, and every parameter has a state of its own shape."""
    learner = _trained_learner()
    old_ids = set(learner.net.cell_ids())
    before = _edge_moments(learner)
    learner.grow(1)
    net, t = learner.net, learner.net.tissue
    parent = dict(zip(t.cell_id.tolist(), t.parent.tolist(), strict=True))
    fluid = set(t.cell_id[(t.route == 1) & (t.parent >= 0)].tolist())  # the daughters B
    assert fluid and not fluid & old_ids
    origin = lambda c: c if c in old_ids else parent[c]  # noqa: E731
    strength = net.banks["strength"].detach()
    for j, ((src, dst), moments) in enumerate(_edge_moments(learner).items()):
        if src in fluid:
            assert float(strength[j]) == 0.0 and bool((moments == 0).all()), (src, dst)
        else:
            assert torch.equal(moments, before[(origin(src), origin(dst))]), (src, dst)
    readout_state = learner.optimizer.state[net.banks["readout"]]
    fresh = (t.route == 1) & (t.parent >= 0)
    assert bool((net.banks["readout"][fresh] == 0).all())
    assert bool((readout_state["exp_avg"][fresh] == 0).all())
    for p in learner.model.parameters():
        for v in learner.optimizer.state[p].values():
            assert not torch.is_tensor(v) or v.dim() == 0 or v.shape == p.shape


def test_growth_events_follow_the_growth_schema(tmp_path) -> None:
    run = RunDir(tmp_path / "run")
    run.create("")
    learner = _trained_learner(run)
    learner.grow(1)
    events = read_jsonl(tmp_path / "run" / "events.jsonl")
    assert events and all(GROWTH_SCHEMA <= set(e) for e in events)
    assert {e["rule"] for e in events} == {"task-change"} and {e["task"] for e in events} == {1}
    for e in events:
        assert (tmp_path / "run" / "snapshots" / e["snapshot"]).exists()
    metrics = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert metrics[0]["kind"] == "train" and metrics[0]["loss"] > 0
