"""The ``morpho`` command line: a thin layer that builds configs and calls the library.

Engine commands live here (``grow``, ``rules``); task, rendering and benchmark commands register
themselves through the ``morpho.commands`` entry-point group (``morpho.sims``,
``morpho.viz``), so the engine never imports them. Errors print one line and exit 2.
"""

from __future__ import annotations

import os
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
import typer.core

from morpho.config import PRESETS, RunConfig
from morpho.files import load_toml
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
            say_error(f"{message}{where}")
            sys.exit(e.exit_code)
        except OSError as e:  # a path no command could use (too long, a device …)
            say_error(
                f"{e.strerror or e} ({e.filename}); expected a path that can be read or written"
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
    """Print ``error: message`` on stderr and exit with status 2 (under torchrun every
    rank exits 2; only rank 0 prints)."""
    say_error(message)
    raise typer.Exit(2)


def say_error(message: str) -> None:
    """``error: message`` on stderr, once: on rank 0 of a torchrun job."""
    from morpho.distributed import env_rank

    if env_rank() == 0:
        typer.echo(f"error: {message}", err=True)


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
    ctx: typer.Context,
    task: TaskOpt = "lang",
    preset: Annotated[
        Optional[str],
        typer.Option(
            help=f"{' | '.join(PRESETS)} \\[the task's own: lang wide, digits, mnist; else small]."
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
    resume: Annotated[
        Optional[Path],
        typer.Option(
            help="Continue this run directory (with --steps to extend it; --checkpoint-every "
            "and --device apply too; other flags are refused)."
        ),
    ] = None,
    checkpoint_every: Annotated[
        Optional[int], typer.Option(help="Steps between checkpoints.")
    ] = None,
    quiet: Annotated[
        bool,
        typer.Option(
            help="No progress bar (when stdout is not a terminal: no progress lines, which "
            "come every MORPHO_PROGRESS_EVERY seconds, default 30)."
        ),
    ] = False,
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
                check_resume_flags(ctx, resume)
                summary = resume_run(
                    resume,
                    steps=steps,
                    progress=not quiet,
                    callbacks=callbacks,
                    train={"checkpoint_every": checkpoint_every, "device": device},
                )
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
    except ImportError as e:  # an optional dependency of the task (an extra)
        from morpho.extras import missing_extra

        fail(missing_extra(e, "this run"))
        return
    except OSError as e:
        _write_failed(e, path)
        return
    except NonFiniteError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    assert path is not None
    _report(path, summary)


RESUME_FLAGS = (
    "resume",
    "steps",
    "checkpoint_every",
    "device",
    "quiet",
    "tensorboard",
)  # applied to a resume


def check_resume_flags(ctx: typer.Context, run: Path) -> None:
    """``ValueError`` naming the first flag given beside ``--resume`` that a resumed run
    cannot honour (its task, data and config are the run's own). ``--seed`` and ``--task``
    pass when they repeat what the run recorded."""
    try:
        cfg = RunConfig().merged(load_toml(run / "config.toml"))
        recorded: dict[str, Any] = {"seed": cfg.train.seed, "task": cfg.task}
    except (ValueError, OSError):
        recorded = {}  # not a run: the resume itself says so
    for name, value in ctx.params.items():
        source = getattr(ctx.get_parameter_source(name), "name", "DEFAULT")
        if name in RESUME_FLAGS or source == "DEFAULT":
            continue
        if name in recorded and value == recorded[name]:
            continue
        flag = "--" + name.replace("_", "-")
        own = f", {name} {recorded[name]!r}" if name in recorded else ""
        raise ValueError(
            f"{flag} does not apply to a resumed run ({str(run)!r} continues with the config "
            f"it recorded{own}); expected beside --resume only --steps, --checkpoint-every, "
            "--device, --quiet or --tensorboard"
        )


def preflight(cfg: RunConfig, out: Path) -> None:
    """Check what a run needs before anything is written: the output path, the memory of
    the device, and one batch of the task's data (``ValueError`` naming what was expected).
    """
    import torch

    from morpho.grow import build_task, check_parallel, fit_to_task
    from morpho.memory import check_fits
    from morpho.progress import line_interval
    from morpho.rundir import check_out_dir

    line_interval()  # MORPHO_PROGRESS_EVERY, read again when the run starts
    check_out_dir(out)
    check_parallel(cfg)
    check_fits(cfg.network, cfg.train)
    task = build_task(cfg)
    cfg = fit_to_task(cfg, task)  # a classification task's own shape
    if task.vocab_size < 2:
        raise ValueError(
            f"the {cfg.task} data has {task.vocab_size} distinct token(s); expected at least 2"
        )
    task.batch("train", 1, cfg.train.seq_len, torch.Generator().manual_seed(0))
    task.eval_batches(1, 1, cfg.train.seq_len)


def _write_failed(e: OSError, path: Optional[Path]) -> None:
    """One line for a run that could not write (a full disk …): the file, and whether the
    run can be resumed from a checkpoint or should be deleted."""
    where = f" writing {str(e.filename)!r}" if e.filename else ""
    what = f"{e.strerror or e}{where}"
    if path is None or not (path / "config.toml").is_file():
        fail(f"{what}; expected a writable place with free space")
    assert path is not None
    if list((path / "checkpoints").glob("*.pt")):
        fail(
            f"{what}; the run {str(path)!r} stopped part-way: free space, then continue it "
            f"from its last checkpoint with: morpho grow --resume {path}"
        )
    fail(
        f"{what}; the run {str(path)!r} stopped before its first checkpoint and cannot be "
        f"resumed: delete it (or start again with --overwrite) once there is free space"
    )


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
    line = (
        f"run {path}: {metric}, {summary['cells']} cells, "
        f"{summary['edges']} edges, {summary['params']:,} params, "
        f"{summary['edits']} edits, {summary['tokens_per_s']:,.0f} tok/s"
    )
    try:
        typer.echo(line)
    except OSError as e:  # stdout full or closed: the run itself is complete and saved
        try:  # what stdout still buffers goes nowhere, so the exit's flush cannot fail
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass  # no file descriptor behind stdout
        try:
            typer.echo(f"morpho: {line} (not printed: {e.strerror or e})", err=True)
        except OSError:
            pass


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
