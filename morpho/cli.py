"""The ``morpho`` command line: a thin layer that builds configs and calls the library.

Engine commands live here (``grow``, ``rules``); task, rendering and benchmark commands register
themselves through the ``morpho.commands`` entry-point group (``morpho.sims``,
``morpho.viz``), so the engine never imports them. Errors print one line and exit 2.
"""

from __future__ import annotations

import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from morpho.config import RunConfig, load_toml
from morpho.options import (
    ConfigOpt,
    CorpusOpt,
    DataOpt,
    DeviceOpt,
    OverwriteOpt,
    SeedOpt,
    StepsOpt,
    TaskOpt,
)

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="morpho: grow neural networks as living graphs of thermodynamic cells.",
    pretty_exceptions_enable=False,
)


def fail(message: str) -> None:
    """Print ``error: message`` on stderr and exit with status 2."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def run_config(preset: str, config: Optional[Path], overrides: dict[str, Any]) -> RunConfig:
    """Preset, then the TOML file, then the CLI flags (those not left at None)."""
    cfg = RunConfig.preset(preset)
    if config is not None:
        cfg = cfg.merged(load_toml(config))
    return cfg.merged(_drop_none(overrides))


def default_preset(task: str) -> str:
    """The preset ``morpho grow`` uses when none is given: the wide-stream cell on ``lang``
    (it measures better there, benchmarks/cell_design.md), the small preset elsewhere."""
    return "wide" if task == "lang" else "small"


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        v = _drop_none(v) if isinstance(v, dict) else v
        if v is not None and v != {}:
            out[k] = v
    return out


@app.command()
def grow(
    task: TaskOpt = "lang",
    preset: Annotated[
        Optional[str],
        typer.Option(help="small | base | anchor | wide [lang: wide, else small]."),
    ] = None,
    steps: StepsOpt = None,
    out: Annotated[Optional[Path], typer.Option(help="Run directory [runs/<task>-N].")] = None,
    seed: SeedOpt = None,
    device: DeviceOpt = None,
    data: DataOpt = None,
    corpus: CorpusOpt = None,
    config: ConfigOpt = None,
    overwrite: OverwriteOpt = False,
    resume: Annotated[Optional[Path], typer.Option(help="Continue this run directory.")] = None,
    checkpoint_every: Annotated[
        Optional[int], typer.Option(help="Steps between checkpoints.")
    ] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Grow a network on a task and write a run directory (or continue one with --resume)."""
    from morpho.grow import default_run_path
    from morpho.grow import grow as grow_run
    from morpho.grow import resume as resume_run
    from morpho.trainer import NonFiniteError

    try:
        if resume is not None:
            path = resume
            summary = resume_run(resume, steps=steps, progress=not quiet)
            _report(path, summary)
            return
        cfg = run_config(
            preset or default_preset(task),
            config,
            {
                "task": task,
                "task_options": {"data": str(data) if data else None, "corpus": corpus},
                "train": {
                    "steps": steps,
                    "seed": seed,
                    "device": device,
                    "checkpoint_every": checkpoint_every,
                },
                "network": {"seed": seed},
            },
        )
        path = out or default_run_path(cfg.task)
        summary = grow_run(cfg, path, progress=not quiet, overwrite=overwrite)
    except ValueError as e:
        fail(str(e))
        return
    except NonFiniteError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    _report(path, summary)


def _report(path: Path, summary: dict[str, Any]) -> None:
    from morpho.distributed import is_main

    if not is_main():
        return
    typer.echo(
        f"run {path}: val_bpc {summary['val_bpc']:.3f} "
        f"(best {summary['best_val_bpc']:.3f}), {summary['cells']} cells, "
        f"{summary['edges']} edges, {summary['params']:,} params, "
        f"{summary['edits']} edits, {summary['tokens_per_s']:,.0f} tok/s"
    )


@app.command()
def rules() -> None:
    """List the growth rules (built-in and from entry points) with their laws."""
    from morpho.scheduler import RULES, rule_law

    for name in RULES.names():
        typer.echo(f"{name:<12} {rule_law(RULES.get(name))}")


def _load_command_groups() -> None:
    for ep in entry_points(group="morpho.commands"):
        try:
            ep.load()(app)
        except ImportError as e:  # an extra that is not installed: its commands are absent
            print(f"morpho: commands {ep.name!r} unavailable: {e}", file=sys.stderr)


_load_command_groups()


def main() -> None:
    app()
