"""Growth movies and stills of a run: the library functions behind ``morpho render``.

    render_movie("runs/demo", "growth.mp4", RenderConfig(color="gate", frames=240))
    render_still("runs/demo", "frame.png", step=300, cfg=RenderConfig(color="level"))

Reads the run directory only. Outputs go through a temporary file renamed at the end, so
an error leaves nothing half-written. ``.mp4`` is H.264 through imageio-ffmpeg; ``.gif``
loops.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from morpho.files import atomic_path
from morpho.rundir import check_out_file
from morpho.viz.coloring import CHOICES
from morpho.viz.runs import Run, load_run
from morpho.viz.timeline import SIZE_BY, WORMHOLE_LENGTH, Timeline

MOVIE_SUFFIXES = (".mp4", ".gif")
MAX_SIZE = (7680, 4320)  # 8K: larger frames exhaust the off-screen renderer
MAX_FRAMES, MAX_FPS = 100_000, 240
STILL_SUFFIXES = (".png", ".jpg")


@dataclass(frozen=True)
class RenderConfig:
    """How a movie or a still looks."""

    color: str = "free-energy"  # what colours the cells: see morpho.viz.coloring.CHOICES
    size_by: str = "params"  # what sizes the cells: params | age
    frames: int = 240  # frames of a movie
    fps: int = 24  # frames per second of a movie
    size: tuple[int, int] = (1280, 720)  # pixels, width × height (even, for H.264)
    orbit: float = 90.0  # degrees the camera turns over the movie
    wormhole_length: float = WORMHOLE_LENGTH  # edges longer than this (pos space) are drawn
    # as wormholes: thicker, in their own colour (inf: none)

    def __post_init__(self) -> None:
        if self.color not in CHOICES:
            raise ValueError(
                f"unknown --color {self.color!r}; expected one of: {', '.join(CHOICES)}"
            )
        if self.size_by not in SIZE_BY:
            raise ValueError(
                f"unknown --size-by {self.size_by!r}; expected one of: {', '.join(SIZE_BY)}"
            )
        if not 1 <= self.frames <= MAX_FRAMES or not 1 <= self.fps <= MAX_FPS:
            raise ValueError(
                f"--frames must be in [1, {MAX_FRAMES}] and --fps in [1, {MAX_FPS}]; "
                f"got {self.frames}, {self.fps}"
            )
        if not math.isfinite(self.orbit):
            raise ValueError(f"--orbit must be a finite number of degrees; got {self.orbit}")
        if not self.wormhole_length > 0:
            raise ValueError(f"--wormhole-length must be > 0; got {self.wormhole_length}")
        w, h = self.size
        if not (320 <= w <= MAX_SIZE[0] and 160 <= h <= MAX_SIZE[1]) or w % 2 or h % 2:
            raise ValueError(
                f"--size must be WxH with even W in [320, {MAX_SIZE[0]}] and even H in "
                f"[160, {MAX_SIZE[1]}]; got {w}x{h}"
            )


def parse_size(text: str) -> tuple[int, int]:
    """``"1280x720"`` -> ``(1280, 720)``; ``ValueError`` naming the expected form."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--size must look like 1280x720; got {text!r}") from None
    return w, h


def render_movie(
    run_dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    cfg: RenderConfig = RenderConfig(),
    overwrite: bool = False,
) -> Path:
    """Render the run's growth as a movie at ``out`` (``.mp4`` or ``.gif``; an existing file
    only with ``overwrite``); returns ``out``."""
    out = Path(out)
    _check_out(out, MOVIE_SUFFIXES, "a movie", overwrite)
    run = load_run(run_dir)
    with atomic_path(out) as tmp:
        _write_movie(tmp, _frames(run, cfg), cfg.fps)
    return out


def render_still(
    run_dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    step: int,
    cfg: RenderConfig = RenderConfig(),
    overwrite: bool = False,
) -> Path:
    """Render the snapshot nearest ``step`` as an image at ``out`` (an existing file only
    with ``overwrite``); returns ``out``."""
    import imageio.v3 as iio

    out = Path(out)
    _check_out(out, STILL_SUFFIXES, "a still (--frame)", overwrite)
    run = load_run(run_dir)
    timeline = Timeline(run, cfg.color, cfg.size_by, cfg.wormhole_length)
    k = run.nearest(step)
    scene = _scene(run, timeline, cfg)
    try:
        image = scene.draw(timeline.frame(k), turn=k / max(timeline.duration, 1))
    finally:
        scene.close()
    with atomic_path(out) as tmp:
        iio.imwrite(tmp, image)
    return out


def _check_out(out: Path, allowed: tuple[str, ...], what: str, overwrite: bool) -> None:
    if out.suffix.lower() not in allowed:
        raise ValueError(
            f"--out {str(out)!r} is not {what}; expected a file ending in {' or '.join(allowed)}"
        )
    check_out_file(out, "--out", overwrite)


def _scene(run: Run, timeline: Timeline, cfg: RenderConfig):  # type: ignore[no-untyped-def]
    from morpho.viz.scene import Scene  # pyvista is imported only when drawing

    return Scene(timeline, cfg.size, cfg.orbit, cfg.size_by, title=run.path.resolve().name)


def _frames(run: Run, cfg: RenderConfig) -> Iterator[np.ndarray]:
    """The movie's frames: time and camera advance evenly from the first to the last."""
    timeline = Timeline(run, cfg.color, cfg.size_by, cfg.wormhole_length)
    scene = _scene(run, timeline, cfg)
    try:
        for i in range(cfg.frames):
            turn = i / max(cfg.frames - 1, 1)
            yield scene.draw(timeline.frame(turn * timeline.duration), turn)
    finally:
        scene.close()


def _write_movie(path: Path, frames: Iterator[np.ndarray], fps: int) -> None:
    import imageio.v2 as imageio

    if path.suffix.lower() == ".gif":
        _write_gif(path, frames, fps)
        return
    writer = imageio.get_writer(
        path, fps=fps, codec="libx264", quality=7, macro_block_size=2, ffmpeg_log_level="error"
    )
    try:
        for frame in frames:
            writer.append_data(frame)
    finally:
        writer.close()


def _write_gif(path: Path, frames: Iterator[np.ndarray], fps: int) -> None:
    """A looping GIF; each frame is kept palettised (1 byte a pixel) until Pillow writes."""
    from PIL import Image

    images = [Image.fromarray(f).quantize(256, method=Image.Quantize.MEDIANCUT) for f in frames]
    images[0].save(
        path,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=round(1000 / fps),
        loop=0,
        disposal=1,
    )
