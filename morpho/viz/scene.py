"""The off-screen pyvista scene that draws one :class:`~morpho.viz.timeline.FrameState`.

    scene = Scene(timeline, size=(1280, 720), orbit=90.0)
    image = scene.draw(timeline.frame(3.0), turn=0.5)   # (H, W, 3) uint8, key panel included
    scene.close()

Cells are points rendered as spheres (``points_gaussian`` with a per-point radius: cheap
on a CPU renderer, unlike sphere glyphs); edges are plain lines, wormholes (edges longer
than the timeline's wormhole length) thicker lines of their own colour. A newborn wears a solid
yellow ring, a dying cell a dashed red one (splat shaders on point actors). Opaque and
fading (translucent) cells are separate actors, because one translucent point makes VTK
draw a whole actor without depth writes. The camera looks at the box holding
every frame (a growing tissue stays in view) and orbits ``orbit`` degrees over the movie.
This is the only module (with ``export``) that imports pyvista.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyvista as pv

from morpho.viz.legend import (
    BACKGROUND,
    BORN_RGB,
    DYING_RGB,
    EDGE_RGB,
    TEXT,
    WORMHOLE_RGB,
    legend_panel,
    legend_width,
)
from morpho.viz.timeline import FrameState, Timeline

ELEVATION = 18.0  # camera elevation above the xy-plane, degrees (levels stack along z)
VIEW_ANGLE = 30.0  # vertical field of view, degrees
WORMHOLE_WIDTH = 2.5  # line width of a wormhole, relative to an ordinary edge
RING_SCALE = 1.6  # outer radius of a newborn's / a dying cell's ring, relative to the cell
# splat shaders of the rings (vtkPointGaussianMapper): keep an annulus of the unit splat;
# the dying ring is dashed. The ring lies outside the sphere's silhouette, so it shows.
RING_SHADERS = {
    "born": "//VTK::Color::Impl\n"
    "float r2 = dot(offsetVCVSOutput.xy, offsetVCVSOutput.xy);\n"
    "if (r2 > 1.0 || r2 < 0.72) { discard; }\n",
    "dying": "//VTK::Color::Impl\n"
    "float r2 = dot(offsetVCVSOutput.xy, offsetVCVSOutput.xy);\n"
    "float a = atan(offsetVCVSOutput.y, offsetVCVSOutput.x);\n"
    "if (r2 > 1.0 || r2 < 0.68 || sin(8.0 * a) < 0.0) { discard; }\n",
}


def offscreen() -> None:
    """Render without a display; allow empty meshes (a tissue can die out)."""
    pv.OFF_SCREEN = True
    pv.global_theme.allow_empty_mesh = True
    try:  # VTK tries X first and logs a warning before falling back to EGL/OSMesa
        from vtkmodules.vtkCommonCore import vtkLogger

        vtkLogger.SetStderrVerbosity(vtkLogger.VERBOSITY_ERROR)
    except ImportError:  # pragma: no cover
        pass


class Scene:
    """A plotter with six actors (edges, wormholes, solid cells, fading cells, newborn rings,
    dying rings), a caption and the key panel."""

    def __init__(
        self,
        timeline: Timeline,
        size: tuple[int, int],
        orbit: float = 90.0,
        size_by: str = "params",
        title: str = "",
    ) -> None:
        offscreen()
        width, height = size
        key = legend_width(width)
        self.timeline = timeline
        self.orbit = orbit
        self.panel = legend_panel(
            timeline.colors, size_by, height, key, title, timeline.wormhole_length
        )
        self.plotter = pv.Plotter(off_screen=True, window_size=[width - key, height])
        if self.plotter.ren_win is not None:  # MSAA costs 2-4x per frame on llvmpipe
            self.plotter.ren_win.SetMultiSamples(0)
        self.plotter.set_background(BACKGROUND)  # type: ignore[arg-type]  # pyvista's stub
        self._add_actors(max(1, height // 480))
        self.caption = self.plotter.add_text(
            "", position="upper_left", color=TEXT, font_size=max(7, height // 60)
        )
        self.center, self.distance = _framing(timeline, (width - key) / height)

    def _add_actors(self, line_width: int) -> None:
        """One mesh per actor, kept and updated in place each frame (``copy_from``)."""
        p = self.plotter
        no_points = _points(np.zeros((0, 3)), np.zeros((0, 4)), np.zeros(0))
        no_lines = _lines(np.zeros((0, 3)), np.zeros((2, 0), int), np.zeros((0, 3)))
        self.meshes = {
            "edges": no_lines,
            "wormholes": no_lines.copy(),
            "solid": _points(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0)),
            **{name: no_points.copy() for name in ("fading", "born", "dying")},
        }
        p.add_mesh(self.meshes["edges"], scalars="rgb", rgb=True, line_width=line_width)
        p.add_mesh(
            self.meshes["wormholes"],
            scalars="rgb",
            rgb=True,
            line_width=round(WORMHOLE_WIDTH * line_width),
        )
        for name in self.meshes:
            if name in ("edges", "wormholes"):
                continue
            colors: dict[str, Any] = {"rgb": True} if name == "solid" else {"rgba": True}
            actor = p.add_mesh(
                self.meshes[name],
                scalars="rgb",
                style="points_gaussian",
                render_points_as_spheres=name in ("solid", "fading"),
                emissive=False,
                **colors,
            )
            actor.mapper.scale_array = "radius"
            if name in RING_SHADERS:
                actor.mapper.SetSplatShaderCode(RING_SHADERS[name])

    def draw(self, state: FrameState, turn: float = 0.0) -> np.ndarray:
        """Render ``state`` with the camera ``turn`` (0–1) of the way round its orbit.

        Returns:
            (H, W, 3) uint8: the scene with the key panel on its right.
        """
        solid = state.alpha >= 0.999
        rgba = np.concatenate([state.rgb, state.alpha[:, None]], axis=1)
        born = state.halo > 0.01
        born_rgba = np.tile([*BORN_RGB, 1.0], (int(born.sum()), 1))
        born_rgba[:, 3] = state.halo[born] * np.minimum(state.alpha[born] * 2, 1)
        dying_rgba = np.tile([*DYING_RGB, 1.0], (int(state.dying.sum()), 1))
        dying_rgba[:, 3] = np.minimum(1.0, 2 * state.alpha[state.dying])
        bg, fg = np.array(BACKGROUND), np.array(EDGE_RGB)
        edge_rgb = bg + state.edge_weight[:, None] * (fg - bg)
        jump = state.wormhole
        # √weight: a wormhole at strength 0 (just grown) still shows clearly, and fades
        wormhole_rgb = bg + np.sqrt(state.edge_weight[jump, None]) * (np.array(WORMHOLE_RGB) - bg)
        r = state.radius
        update = {
            "solid": _points(state.pos[solid], state.rgb[solid], r[solid]),
            "fading": _points(state.pos[~solid], rgba[~solid], r[~solid]),
            "born": _points(state.pos[born], born_rgba, RING_SCALE * r[born]),
            # a touch wider than a newborn's ring: a cell born and doomed shows both
            "dying": _points(state.pos[state.dying], dying_rgba, 1.3 * RING_SCALE * r[state.dying]),
            "edges": _lines(state.pos, state.lines[:, ~jump], edge_rgb[~jump]),
            "wormholes": _lines(state.pos, state.lines[:, jump], wormhole_rgb),
        }
        for name, mesh in update.items():
            self.meshes[name].copy_from(mesh)
        self.caption.SetText(2, self._caption(state))
        self._place_camera(turn)
        self.plotter.render()  # screenshot() renders only the first time
        image = self.plotter.screenshot(return_img=True)
        assert image is not None  # return_img=True
        return np.concatenate([image[..., :3], self.panel], axis=1)

    def _caption(self, state: FrameState) -> str:
        parts = [f"step {state.step:,}"]
        loss = self.timeline.run.metrics_at(state.step)
        parts += [f"{k} {v:.3f}" for k, v in loss.items()]
        parts += [f"cells {state.n_cells}", f"edges {state.n_edges}"]
        return "   ".join(parts)

    def _place_camera(self, turn: float) -> None:
        phi = math.radians(-60.0 + self.orbit * turn)
        el = math.radians(ELEVATION)
        offset = np.array(
            [math.cos(el) * math.cos(phi), math.cos(el) * math.sin(phi), math.sin(el)]
        )
        camera = self.plotter.camera
        camera.focal_point = tuple(self.center)
        camera.position = tuple(self.center + self.distance * offset)
        camera.up = (0.0, 0.0, 1.0)
        camera.view_angle = VIEW_ANGLE
        self.plotter.renderer.ResetCameraClippingRange()

    def close(self) -> None:
        self.plotter.close()


def _framing(timeline: Timeline, aspect: float) -> tuple[np.ndarray, float]:
    """Focal point and camera distance that keep every cell of every frame in view from any
    azimuth of the orbit: the cells fit in an upright cylinder (radius ``r``, height ``h``)."""
    lo, hi = timeline.bounds()
    center = (lo + hi) / 2
    pos = np.concatenate([x for x in timeline.layouts if len(x)] or [center[None]])
    pad = (hi - pos.max(axis=0)).max()  # the bounds' margin for the spheres
    r = float(np.linalg.norm(pos[:, :2] - center[:2], axis=1).max()) + pad
    el, tan = math.radians(ELEVATION), math.tan(math.radians(VIEW_ANGLE / 2))
    half_height = (hi[2] - lo[2]) / 2 * math.cos(el) + r * math.sin(el)
    return center, 1.02 * max(half_height / tan, r / (tan * aspect)) + 0.2 * r


def _points(pos: np.ndarray, colors: np.ndarray, radius: np.ndarray) -> pv.PolyData:
    """Points with colours (N, 3|4) in [0, 1] and radii (N,), as a vertex PolyData.

    pyvista refuses empty arrays, so no points is one point of radius 0 (invisible).
    """
    if len(pos) == 0:
        pos, colors, radius = np.zeros((1, 3)), np.zeros((1, colors.shape[1])), np.zeros(1)
    mesh = pv.PolyData(np.asarray(pos, dtype=np.float32).reshape(-1, 3))
    mesh.point_data["rgb"] = (np.clip(colors, 0, 1) * 255).astype(np.uint8)
    mesh.point_data["radius"] = np.asarray(radius, dtype=np.float32)
    return mesh


def _lines(pos: np.ndarray, lines: np.ndarray, colors: np.ndarray) -> pv.PolyData:
    """Segments ``lines`` (2, F) between rows of ``pos`` (N, 3), coloured per segment.

    Each segment gets its own two points coloured like it: point colours are the fast path
    of VTK's OpenGL mapper (cell colours go through a texture lookup). No segments is one
    zero-length segment in the background colour (pyvista refuses empty arrays).
    """
    if lines.shape[1] == 0:
        pos, lines, colors = np.zeros((1, 3)), np.zeros((2, 1), int), np.array([BACKGROUND])
    ends = np.asarray(pos, dtype=np.float32)[lines.T].reshape(-1, 3)  # (2F, 3)
    cells = np.column_stack([np.full(lines.shape[1], 2), np.arange(len(ends)).reshape(-1, 2)])
    mesh = pv.PolyData(ends, lines=cells.ravel())
    rgb = (np.clip(colors, 0, 1) * 255).astype(np.uint8).reshape(-1, 3)
    mesh.point_data["rgb"] = np.repeat(rgb, 2, axis=0)
    return mesh
