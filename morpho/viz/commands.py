"""CLI commands of the rendering side: ``morpho render``, ``morpho plot``, ``morpho export``,
``morpho tensorboard``.

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
COLORS = (
    "free-energy",
    "gate",
    "level",
    "lineage",
    "birth",
    "task",
    "domain",
    "clock",
    "repr-entropy",
)
OverwriteOpt = Annotated[
    bool, typer.Option(help="Replace an existing output (a folder is replaced whole).")
]


def register(app: typer.Typer) -> None:
    """Add the viz commands to ``app``."""
    app.command()(render)
    app.command()(plot)
    app.command()(export)
    app.command()(tensorboard)


def render(
    run: Annotated[Path, typer.Argument(help="Run directory written by morpho grow.")],
    out: Annotated[
        Optional[Path],
        typer.Option(
            help="Movie (.mp4, .gif), an interactive page (.html: every snapshot, offline) "
            "or, with --frame, an image (.png). Default: a movie in the run."
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
        if out is not None and out.suffix.lower() in (".html", ".htm"):
            from morpho.viz.page import render_page

            if frame is not None:
                raise ValueError("--frame renders one still; expected no --frame with a .html page")
            path = render_page(run, out, overwrite, color, wormhole_length)
            what = "an interactive page of every snapshot (open it in a browser)"
        elif frame is None:
            path = render_movie(run, out or run / "growth.mp4", cfg, overwrite)
            what = f"{cfg.frames} frames at {cfg.fps} fps, {size}"
        else:
            path = render_still(run, out or run / f"frame_{frame}.png", frame, cfg, overwrite)
            what = f"the snapshot nearest step {frame}, {size}"
    except (ValueError, ImportError, OSError) as e:
        fail(_message(e))
        return
    typer.echo(f"wrote {path}: {what}, colour {color}")


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
        typer.Option(help="Folder (vtp) or file (graphml); default in <run>/export."),
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


def tensorboard(
    runs: Annotated[
        list[Path],
        typer.Argument(help="Run directories, bench folders or stream folders to convert."),
    ],
    out: Annotated[
        Path, typer.Option(help="Folder of the event files: one subfolder per run.")
    ] = Path("tb"),
    overwrite: OverwriteOpt = False,
) -> None:
    """Write runs as TensorBoard event files (scalars, events, tissue images), one folder
    per run or bench row: then tensorboard --logdir OUT."""
    from morpho.cli import fail

    try:
        from morpho.viz.tensorboard import convert_runs

        paths = convert_runs(list(runs), out, overwrite)
    except (ValueError, OSError) as e:
        fail(_message(e))
        return
    typer.echo(f"wrote {len(paths)} run(s) to {out}: tensorboard --logdir {out}")


def _message(e: Exception) -> str:
    """One line for a refused command: a missing extra names the extra to install."""
    if isinstance(e, ImportError):
        return (
            f"this command needs the viz extra ({e.name or e} is not installed); "
            "expected it installed: pip install 'morpho[viz]'"
        )
    if isinstance(e, OSError):
        return f"{e.strerror or e} ({e.filename}); expected a writable output path"
    return str(e)
