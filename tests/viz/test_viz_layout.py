"""Laws of the movie's layout and time axis (no rendering: numpy only).

- a cell keeps its place from snapshot to snapshot (warm start by cell_id);
- daughters start at their mother's place and end beside it;
- a frame at a snapshot's time shows exactly that snapshot, positions from its layout;
- frames in between interpolate; cells that are gone next are marked dying (not the
  mothers of a split, which divide);
- colours of a continuous statistic share one range over the run; categorical ones
  give one colour per category.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from morpho.viz.coloring import cell_colors, color_range
from morpho.viz.layout import relax, spacing, stable_layout
from morpho.viz.runs import load_run
from morpho.viz.synthetic import synthetic_run
from morpho.viz.timeline import Timeline


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return load_run(synthetic_run(tmp_path_factory.mktemp("layout") / "run", n_cells=30))


def test_cells_keep_their_place_across_snapshots(run) -> None:  # type: ignore[no-untyped-def]
    layouts = stable_layout(run.snapshots)
    step = spacing(run.snapshots)
    for k in range(len(run.snapshots) - 1):
        a, b = run.snapshots[k], run.snapshots[k + 1]
        _, ia, ib = np.intersect1d(a.ids, b.ids, return_indices=True)
        moved = np.linalg.norm(layouts[k][ia] - layouts[k + 1][ib], axis=1)
        assert np.median(moved) < 0.25 * step, (a.step, b.step)


def place(state, cell_id: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    return state.pos[state.ids == cell_id][0]


def test_daughters_start_at_their_mother_and_end_beside_her(run) -> None:  # type: ignore[no-untyped-def]
    timeline = Timeline(run, "level")
    a, b = run.snapshots[0], run.snapshots[1]
    born = np.setdiff1d(b.ids, a.ids)
    assert len(born) >= 2
    start, end = timeline.frame(0.02), timeline.frame(1.0)
    step = spacing(run.snapshots)
    for cid in born:
        mother = int(b.cells["parent"][b.ids == cid][0])
        mother_place = timeline.layouts[0][a.ids == mother][0]
        assert np.linalg.norm(place(start, cid) - mother_place) < 0.05 * step
        assert np.linalg.norm(place(end, cid) - mother_place) < 2.5 * step
    assert not np.isin(a.ids[~np.isin(a.ids, b.ids)], end.ids).any()  # mothers are gone


def test_a_snapshot_time_shows_that_snapshot(run) -> None:  # type: ignore[no-untyped-def]
    timeline = Timeline(run, "free-energy")
    for k in (0, 3, len(run.snapshots) - 1):
        state = timeline.frame(float(k))
        s = run.snapshots[k]
        assert state.step == s.step and np.array_equal(np.sort(state.ids), np.sort(s.ids))
        for row, cid in enumerate(s.ids):
            assert np.allclose(place(state, cid), timeline.layouts[k][row])
        assert state.lines.shape[1] == s.n_edges == state.n_edges


def test_frames_between_snapshots_interpolate(run) -> None:  # type: ignore[no-untyped-def]
    timeline = Timeline(run, "level")
    a, b = run.snapshots[2], run.snapshots[3]
    mid = timeline.frame(2.5)
    assert a.step < mid.step < b.step
    for cid in np.intersect1d(a.ids, b.ids):
        xa, xb = timeline.layouts[2][a.ids == cid][0], timeline.layouts[3][b.ids == cid][0]
        assert np.allclose(place(mid, cid), (xa + xb) / 2)  # smoothstep(0.5) = 0.5


def test_removed_cells_are_dying_and_mothers_divide(run) -> None:  # type: ignore[no-untyped-def]
    timeline = Timeline(run, "level")
    removed = {c for e in run.events if e["kind"] == "remove" for c in e["dead_cells"]}
    assert removed
    for k in range(len(run.snapshots) - 1):
        a, b = run.snapshots[k], run.snapshots[k + 1]
        state = timeline.frame(float(k))
        gone = set(np.setdiff1d(a.ids, b.ids).tolist())
        expected = len(gone & removed)
        assert int(state.dying.sum()) == expected, k


def test_wormholes_are_the_edges_longer_than_the_threshold(run) -> None:  # type: ignore[no-untyped-def]
    s = run.snapshots[-1]
    src, dst = s.edges["edge_index"]
    lengths = np.linalg.norm(s.cells["pos"][src] - s.cells["pos"][dst], axis=1)
    cut = float(np.median(lengths))  # half the edges are "wormholes" at this threshold
    state = Timeline(run, "level", wormhole_length=cut).frame(len(run.snapshots) - 1.0)
    ends = {(int(a), int(b)) for a, b in zip(*s.edge_ends(), strict=True)}
    drawn = [(int(state.ids[a]), int(state.ids[b])) for a, b in state.lines.T]
    assert set(drawn) == ends
    long = {e for e, x in zip(zip(*s.edge_ends(), strict=True), lengths, strict=True) if x > cut}
    assert {e for e, w in zip(drawn, state.wormhole, strict=True) if w} == long
    assert 0 < state.wormhole.sum() < len(drawn)
    assert not Timeline(run, "level").frame(0.0).wormhole.any()  # the seed is local


def test_bounds_hold_every_frame(run) -> None:  # type: ignore[no-untyped-def]
    timeline = Timeline(run, "level")
    lo, hi = timeline.bounds()
    for u in np.linspace(0, timeline.duration, 23):
        pos = timeline.frame(u).pos
        assert (pos >= lo).all() and (pos <= hi).all()


def test_relax_separates_a_pile_and_keeps_a_spread_tissue() -> None:
    rng = np.random.default_rng(0)
    pile = rng.normal(scale=1e-3, size=(20, 3))
    out = relax(pile, pile, np.zeros((2, 0), int), rest=1.0, iterations=60)
    gaps = np.linalg.norm(out[:, None] - out[None], axis=-1) + np.eye(20) * 9
    assert gaps.min() > 0.3
    grid = np.stack(np.meshgrid(*[np.arange(3.0) * 2] * 3), -1).reshape(-1, 3)
    assert np.allclose(relax(grid, grid, np.zeros((2, 0), int), rest=1.0), grid)


def test_colour_ranges_and_categories(run) -> None:  # type: ignore[no-untyped-def]
    fe = cell_colors(run, "free-energy")
    all_fe = np.concatenate([s.cell("fe_ema") for s in run.snapshots])
    assert (fe.vmin, fe.vmax) == tuple(np.percentile(all_fe, [2, 98]))
    assert color_range([np.zeros(5), np.array([1.0, 2.0, 3.0])]) == (1.04, 2.96)  # 0s: unmeasured
    level = cell_colors(run, "level")
    assert level.categories == ("level 0", "level 1", "level 2", "level 3")
    rgb = level.rgb(np.arange(4))
    assert len({tuple(c) for c in rgb}) == 4
    with pytest.raises(ValueError, match="expected one of: free-energy, gate"):
        cell_colors(run, "mood")


def test_lineage_founders_are_seed_cells(run) -> None:  # type: ignore[no-untyped-def]
    seeds = set(run.snapshots[0].ids.tolist())
    founders = run.founders()
    assert set(founders.values()) <= seeds
    assert all(founders[c] == c for c in seeds)


def test_load_run_errors_name_the_expected_layout(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        load_run(tmp_path / "nope")
    with pytest.raises(ValueError, match="no snapshots"):
        load_run(tmp_path)
