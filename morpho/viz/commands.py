"""CLI commands of the rendering side: ``morpho render``, ``morpho plot``, ``morpho export``.

Registered through the ``morpho.commands`` entry point, so the engine CLI never imports
``morpho.viz``; pyvista and matplotlib are imported only when a command runs. Bad input
(missing run, no snapshots, unknown ``--color``, bad ``--size`` …) prints one
``error: …`` line and exits 2, writing nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

# the names of morpho.viz.coloring.CHOICES (kept here: that module imports matplotlib)
COLORS = ("free-energy", "gate", "level", "lineage", "birth", "task", "clock", "repr-entropy")
OverwriteOpt = Annotated[
    bool, typer.Option(help="Replace an existing output (a folder is replaced whole).")
]


def register(app: typer.Typer) -> None:
    """Add the viz commands to ``app``."""
    app.command()(render)
    app.command()(plot)
    app.command()(export)


def render(
    run: Annotated[Path, typer.Argument(help="Run directory written by morpho grow.")],
    out: Annotated[
        Optional[Path],
        typer.Option(
            help="Movie (.mp4, .gif) or, with --frame, an image (.png). Default: in the run."
        ),
    ] = None,
    color: Annotated[
        str, typer.Option(help=f"Colour the cells by: {' | '.join(COLORS)}.")
    ] = "free-energy",
    frame: Annotated[
        Optional[int], typer.Option(help="Render one still: the snapshot nearest this step.")
    ] = None,
    frames: Annotated[int, typer.Option(help="Frames of the movie.")] = 240,
    fps: Annotated[int, typer.Option(help="Frames per second of the movie.")] = 24,
    size: Annotated[str, typer.Option(help="Frame size WxH in pixels (even).")] = "1280x720",
    size_by: Annotated[str, typer.Option(help="Size the cells by: params | age.")] = "params",
    orbit: Annotated[float, typer.Option(help="Degrees the camera turns over the movie.")] = 90.0,
    wormhole_length: Annotated[
        float, typer.Option(help="Draw edges longer than this (in pos space) as wormholes.")
    ] = 4.0,
    overwrite: OverwriteOpt = False,
) -> None:
    """Render a 3D growth movie of a run (or one still with --frame)."""
    from morpho.cli import fail

    try:
        from morpho.viz.render import RenderConfig, parse_size, render_movie, render_still

        cfg = RenderConfig(
            color=color,
            size_by=size_by,
            frames=frames,
            fps=fps,
            size=parse_size(size),
            orbit=orbit,
            wormhole_length=wormhole_length,
        )
        if frame is None:
            path = render_movie(run, out or run / "growth.mp4", cfg, overwrite)
            what = f"{cfg.frames} frames at {cfg.fps} fps"
        else:
            path = render_still(run, out or run / f"frame_{frame}.png", frame, cfg, overwrite)
            what = f"the snapshot nearest step {frame}"
    except (ValueError, ImportError, OSError) as e:
        fail(_message(e))
        return
    typer.echo(f"wrote {path}: {what}, {size}, colour {color}")


def plot(
    run: Annotated[Path, typer.Argument(help="Run directory written by morpho grow.")],
    out: Annotated[
        Optional[Path], typer.Option(help="Folder for the PNGs (default <run>/plots).")
    ] = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Plot a run: loss, size, free energy, events, lineage, and the mechanisms' monitors
    (Lyapunov, path norm, pondering) when logged (PNG files)."""
    from morpho.cli import fail

    try:
        from morpho.viz.plots import plot_run

        paths = plot_run(run, out, overwrite=overwrite)
    except (ValueError, ImportError, OSError) as e:
        fail(_message(e))
        return
    typer.echo(
        f"wrote {len(paths)} plots to {paths[0].parent}: " + ", ".join(p.name for p in paths)
    )


def export(
    run: Annotated[Path, typer.Argument(help="Run directory written by morpho grow.")],
    format: Annotated[
        str,
        typer.Option(
            "--format",
            help="vtp (ParaView: a .vtp per snapshot and a .pvd) | graphml (the final tissue).",
        ),
    ] = "vtp",
    out: Annotated[
        Optional[Path],
        typer.Option(
            help="Folder (vtp) or file (graphml); default <run>/export/vtp or "
            "<run>/export/tissue.graphml."
        ),
    ] = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Export a run's tissue for ParaView (vtp + pvd) or graph tools (GraphML)."""
    from morpho.cli import fail

    try:
        from morpho.viz.export import FORMATS, export_graphml, export_vtp

        if format not in FORMATS:
            raise ValueError(f"unknown --format {format!r}; expected one of: {', '.join(FORMATS)}")

        if format == "vtp":
            path = export_vtp(run, out, overwrite)
        else:
            path = export_graphml(run, out, overwrite)
    except (ValueError, ImportError, OSError) as e:
        fail(_message(e))
        return
    typer.echo(f"wrote {path}")


def _message(e: Exception) -> str:
    """One line for a refused command: a missing extra names the extra to install."""
    if isinstance(e, ImportError):
        from morpho.extras import missing_extra

        return missing_extra(e)
    if isinstance(e, OSError):
        return f"{e.strerror or e} ({e.filename}); expected a writable output path"
    return str(e)
