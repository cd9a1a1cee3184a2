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
import typer.core

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

try:  # typer >= 0.20 vendors click
    from typer._click.exceptions import ClickException as _UsageErrors
except ImportError:  # pragma: no cover - older typer on click
    from click import ClickException as _UsageErrors  # type: ignore[no-redef,assignment]


class _OneLineErrors(typer.core.TyperGroup):
    """Usage errors (an unknown option, a value of the wrong type) and unusable paths as
    one ``error:`` line with exit status 2, like every other refusal, instead of a framed
    block or a traceback."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        if not standalone_mode:
            return super().main(*args, **kwargs)
        try:
            rv = super().main(*args, **kwargs)
        except _UsageErrors as e:
            if type(e).__name__ == "NoArgsIsHelpError":  # bare ``morpho``: the help
                typer.echo(e.format_message())
                sys.exit(0)
            ctx = getattr(e, "ctx", None)
            where = f"; see {ctx.command_path} --help" if ctx is not None else ""
            message = " ".join(e.format_message().split())
            typer.echo(f"error: {message}{where}", err=True)
            sys.exit(e.exit_code)
        except OSError as e:  # a path no command could use (too long, a device …)
            typer.echo(
                f"error: {e.strerror or e} ({e.filename}); expected a path that can be "
                "read or written",
                err=True,
            )
            sys.exit(2)
        except typer.Abort:
            typer.echo("error: aborted", err=True)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


app = typer.Typer(
    cls=_OneLineErrors,
    add_completion=False,
    no_args_is_help=True,
    help="morpho: grow neural networks as living graphs of thermodynamic cells.",
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from morpho import __version__

        typer.echo(f"morpho {__version__}")
        raise typer.Exit()


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
    (it measures better there, benchmarks/cell_design.md), an image task's own preset on
    ``digits`` and ``mnist`` and their split streams (benchmarks/images.md), the small preset
    elsewhere."""
    if task.removeprefix("split-") in IMAGE_PRESETS:  # split-digits: the digits preset
        return task.removeprefix("split-")
    return "wide" if task == "lang" else "small"


IMAGE_PRESETS = ("digits", "mnist")  # presets named after the image tasks they fit


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        v = _drop_none(v) if isinstance(v, dict) else v
        if v is not None and v != {}:
            out[k] = v
    return out


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=_print_version, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """morpho: grow neural networks as living graphs of thermodynamic cells."""


@app.command()
def grow(
    task: TaskOpt = "lang",
    preset: Annotated[
        Optional[str],
        typer.Option(
            help="small | base | anchor | wide | digits | mnist [the task's own: lang wide, "
            "digits, mnist; else small]."
        ),
    ] = None,
    steps: StepsOpt = None,
    out: Annotated[
        Optional[Path], typer.Option(help="Run directory (default: runs/<task>-N, first free N).")
    ] = None,
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
    tensorboard: Annotated[
        bool,
        typer.Option(help="Also write TensorBoard event files to <run>/tb (tensorboard extra)."),
    ] = False,
) -> None:
    """Grow a network on a task and write a run directory (or continue one with --resume).

    Ctrl-C (or SIGTERM) stops after the current step with a checkpoint to resume from."""
    from morpho.grow import default_run_path
    from morpho.grow import grow as grow_run
    from morpho.grow import resume as resume_run
    from morpho.interrupt import Interrupted, StopOnSignal
    from morpho.trainer import NonFiniteError
    from morpho.writers import build_writers

    stop = StopOnSignal()
    path = resume
    try:
        callbacks = [stop, *build_writers(["tensorboard"] if tensorboard else [])]
        with stop.installed():
            if resume is not None:
                summary = resume_run(resume, steps=steps, progress=not quiet, callbacks=callbacks)
            else:
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
                preflight(cfg, path)
                summary = grow_run(
                    cfg, path, progress=not quiet, overwrite=overwrite, callbacks=callbacks
                )
    except Interrupted as e:
        _interrupted(e, path)
        return
    except ValueError as e:
        fail(str(e))
        return
    except OSError as e:
        fail(f"{e.strerror or e} ({e.filename}); expected a writable place with free space")
        return
    except NonFiniteError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    assert path is not None
    _report(path, summary)


def preflight(cfg: RunConfig, out: Path) -> None:
    """Check what a run needs before anything is written: the output path, the memory of
    the device, and one batch of the task's data (``ValueError`` naming what was expected).
    """
    import torch

    from morpho.grow import build_task, fit_to_task
    from morpho.memory import check_fits
    from morpho.rundir import check_out_dir

    check_out_dir(out)
    check_fits(cfg.network, cfg.train)
    task = build_task(cfg)
    cfg = fit_to_task(cfg, task)  # a classification task's own shape
    if task.vocab_size < 2:
        raise ValueError(
            f"the {cfg.task} data has {task.vocab_size} distinct token(s); expected at least 2"
        )
    task.batch("train", 1, cfg.train.seq_len, torch.Generator().manual_seed(0))
    task.eval_batches(1, 1, cfg.train.seq_len)


def _interrupted(e: Any, path: Optional[Path]) -> None:
    if e.checkpoint is None:
        typer.echo(f"morpho: {e}; no checkpoint written", err=True)
    else:
        typer.echo(f"morpho: {e}; continue with: morpho grow --resume {path}", err=True)
    raise typer.Exit(128 + e.signum)


def _report(path: Path, summary: dict[str, Any]) -> None:
    from morpho.distributed import is_main

    if not is_main():
        return
    if "test_acc" in summary:  # a classification task
        metric = f"val_acc {summary['val_acc']:.3f}, test_acc {summary['test_acc']:.3f}"
    else:
        metric = f"val_bpc {summary['val_bpc']:.3f} (best {summary['best_val_bpc']:.3f})"
    typer.echo(
        f"run {path}: {metric}, {summary['cells']} cells, "
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
