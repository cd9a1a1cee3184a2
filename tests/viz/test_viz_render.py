"""``morpho render``: off-screen frames and movies of a tiny run, judged by their pixels.

The run is grown by engine edits alone (``morpho.viz.synthetic``): 12 seed cells on 4
levels, splits every round, an apoptosis every third round. Frames are rendered small
(480×320) to stay fast; the key panel on the right is cropped off before counting hues.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pyvista")

import imageio.v3 as iio  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import rgb_to_hsv  # noqa: E402
from torch_geometric.data import Data  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from morpho.cli import app  # noqa: E402
from morpho.rundir import RunDir  # noqa: E402
from morpho.tissue import CELL_FIELDS, load_snapshot  # noqa: E402
from morpho.viz.legend import BACKGROUND, WORMHOLE_RGB, legend_width  # noqa: E402
from morpho.viz.synthetic import synthetic_run  # noqa: E402

W, H = 480, 320


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_run(tmp_path_factory.mktemp("viz") / "run", n_cells=24)


def invoke(*args: object):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, [str(a) for a in args])


def scene_of(image: np.ndarray) -> np.ndarray:
    """The 3D scene: the frame without the key panel on its right."""
    return image[:, : image.shape[1] - legend_width(image.shape[1]), :3]


def foreground(scene: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels that differ from the background."""
    bg = np.array(BACKGROUND) * 255
    return np.abs(scene.astype(float) - bg).sum(axis=-1) > 40


def hue_count(scene: np.ndarray) -> int:
    """Distinct hues among saturated, lit pixels: clusters of 10° hue bins holding > 1 %."""
    hsv = rgb_to_hsv(scene.astype(float) / 255).reshape(-1, 3)
    vivid = hsv[(hsv[:, 1] > 0.5) & (hsv[:, 2] > 0.35)]
    counts = np.bincount((vivid[:, 0] * 36).astype(int) % 36, minlength=36)
    full = counts > 0.01 * max(len(vivid), 1)
    starts = full & ~np.roll(full, 1)  # a cluster starts where its left neighbour is empty
    return int(starts.sum()) if not full.all() else 1


def still(run_dir: Path, out: Path, *args: object) -> np.ndarray:
    result = invoke("render", run_dir, "--out", out, "--size", f"{W}x{H}", *args)
    assert result.exit_code == 0, result.output
    return iio.imread(out)


def test_a_still_is_a_readable_frame(run_dir: Path, tmp_path: Path) -> None:
    image = still(run_dir, tmp_path / "f.png", "--frame", 40, "--color", "gate")
    assert image.shape == (H, W, 3)
    scene = scene_of(image)
    assert scene.std() > 10
    assert foreground(scene).mean() > 0.03  # the tissue covers a real share of the scene
    panel = image[:, scene.shape[1] :]
    assert foreground(panel).mean() > 0.01  # the key is drawn


@pytest.mark.parametrize(("color", "hues"), [("level", 4), ("task", 1)])
def test_sphere_hues_follow_color(run_dir: Path, tmp_path: Path, color: str, hues: int) -> None:
    # step 0: no newborn or dying cell yet, so only the cells' own colours are on screen
    image = still(run_dir, tmp_path / "f.png", "--frame", 0, "--color", color)
    assert hue_count(scene_of(image)) == hues


def test_newborn_cells_wear_a_ring(run_dir: Path, tmp_path: Path) -> None:
    """At a snapshot right after splits, the newborns' yellow rings add a hue."""
    before = hue_count(
        scene_of(still(run_dir, tmp_path / "a.png", "--frame", 0, "--color", "task"))
    )
    after = hue_count(
        scene_of(still(run_dir, tmp_path / "b.png", "--frame", 10, "--color", "task"))
    )
    assert (before, after) == (1, 2)


def test_mp4_reads_back_with_its_frame_count_and_size(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "growth.mp4"
    result = invoke(
        "render",
        run_dir,
        "--out",
        out,
        "--frames",
        12,
        "--fps",
        6,
        "--size",
        "320x240",
        "--color",
        "lineage",
    )
    assert result.exit_code == 0, result.output
    frames = list(iio.imiter(out, plugin="FFMPEG"))
    assert len(frames) == 12
    assert frames[0].shape == (240, 320, 3)
    assert frames[-1].std() > 5 and np.abs(frames[-1].astype(int) - frames[0]).mean() > 1


def test_gif_loops_every_frame(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "growth.gif"
    result = invoke("render", run_dir, "--out", out, "--frames", 5, "--size", "320x240")
    assert result.exit_code == 0, result.output
    assert iio.improps(out, index=None).shape[:3] == (5, 240, 320)


def test_a_tissue_that_dies_out_still_renders(tmp_path: Path, run_dir: Path) -> None:
    """An empty last snapshot (pyvista's empty-mesh trap) renders as a blank scene."""
    tissue, _ = load_snapshot(sorted((run_dir / "snapshots").glob("*.npz"))[0])
    empty = Data(**{k: v[:0] for k, v in tissue.items() if torch.is_tensor(v)})
    empty.edge_index = torch.zeros(2, 0, dtype=torch.long)
    empty.num_nodes, empty.next_cell_id, empty.next_edge_id = 0, 99, 99
    assert set(CELL_FIELDS) <= set(empty.keys())
    run = RunDir(tmp_path / "dead")
    run.create("")
    run.save_snapshot(tissue, 0, {})
    run.save_snapshot(empty, 10, {})
    out = tmp_path / "dead.mp4"
    result = invoke("render", run.path, "--out", out, "--frames", 4, "--size", "320x240")
    assert result.exit_code == 0, result.output
    frames = list(iio.imiter(out, plugin="FFMPEG"))
    assert foreground(scene_of(frames[0])).mean() > 0.01
    assert foreground(scene_of(frames[-1])[20:]).mean() < 0.001  # below the caption


def test_wormholes_are_drawn_in_their_own_hue(run_dir: Path, tmp_path: Path) -> None:
    """Seed edges are short: at the default length none is a wormhole and the frame shows one
    hue (``test_sphere_hues_follow_color``); at a tiny length all are, in a second hue."""
    jumps = scene_of(
        still(
            run_dir, tmp_path / "b.png", "--frame", 0, "--color", "task", "--wormhole-length", 0.01
        )
    )
    assert hue_count(jumps) == 2
    hue = rgb_to_hsv(np.array(WORMHOLE_RGB))[0]
    hsv = rgb_to_hsv(jumps.astype(float) / 255)
    mint = (np.abs(hsv[..., 0] - hue) < 0.03) & (hsv[..., 1] > 0.5) & (hsv[..., 2] > 0.35)
    assert mint.mean() > 0.002


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--color", "energy"), "expected one of: free-energy, gate, level, lineage, birth, task"),
        (("--wormhole-length", 0), "--wormhole-length must be > 0"),
        (("--size", "big"), "--size must look like 1280x720"),
        (("--out", "x.avi"), "expected a file ending in .mp4 or .gif"),
        (("--frame", 3, "--out", "x.mp4"), "expected a file ending in .png"),
    ],
)
def test_bad_options_exit_2_and_write_nothing(
    run_dir: Path, tmp_path: Path, args: tuple, message: str
) -> None:
    args = tuple(tmp_path / a if str(a).startswith("x.") else a for a in args)
    result = invoke("render", run_dir, *args)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_a_render_that_fails_midway_leaves_no_file(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from morpho.viz.render import RenderConfig, render_movie
    from morpho.viz.scene import Scene

    draw = Scene.draw
    calls = []

    def failing_draw(self, state, turn=0.0):  # type: ignore[no-untyped-def]
        calls.append(turn)
        if len(calls) == 3:
            raise RuntimeError("renderer died")
        return draw(self, state, turn)

    monkeypatch.setattr(Scene, "draw", failing_draw)
    with pytest.raises(RuntimeError, match="renderer died"):
        render_movie(run_dir, tmp_path / "m.mp4", RenderConfig(frames=6, size=(320, 240)))
    assert list(tmp_path.iterdir()) == []


def test_missing_run_or_snapshots_exit_2(tmp_path: Path) -> None:
    result = invoke("render", tmp_path / "nope", "--out", tmp_path / "m.mp4")
    assert result.exit_code == 2 and "does not exist" in result.output
    (tmp_path / "empty").mkdir()
    result = invoke("render", tmp_path / "empty", "--out", tmp_path / "m.mp4")
    assert result.exit_code == 2 and "has no snapshots" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


@pytest.mark.slow
def test_a_real_grown_run_renders_plots_and_exports(tmp_path: Path) -> None:
    """The formats a real ``morpho grow`` writes (scheduler events, stats) read end to end."""
    from morpho.config import RunConfig
    from morpho.grow import grow

    cfg = RunConfig.preset("small").merged(
        {
            "train": {"steps": 60, "eval_every": 20, "batch_size": 4, "seq_len": 32},
            "growth": {"start": 10, "interval": 10, "cooldown": 10},
        }
    )
    run_dir = tmp_path / "run"
    grow(cfg, run_dir)
    image = still(run_dir, tmp_path / "f.png", "--frame", 60, "--color", "free-energy")
    assert foreground(scene_of(image)).mean() > 0.03
    for args in (("plot", run_dir), ("export", run_dir, "--format", "vtp")):
        result = invoke(*args)
        assert result.exit_code == 0, result.output
