"""CLI command ``morpho stream``: continual-learning task streams (see morpho/sims/streams.py).

    morpho stream --stream split-digits --scenario class \\
        --methods analytic,random-features,naive,ewc,si,lwf,replay,joint --seeds 3 --tune
    morpho stream --config my_stream.toml --seeds 5        # flags override the file

prints the mean ± std table and writes ``results.json``, heatmaps and one run directory
per (method, seed) under ``--out`` (see :mod:`morpho.sims.stream_run`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

if TYPE_CHECKING:
    from morpho.sims.stream_run import StreamConfig


def register(app: typer.Typer) -> None:
    """Add ``stream`` to ``app``."""
    app.command()(stream)


def stream(
    stream: Annotated[
        Optional[str],
        typer.Option(
            help="split-digits | permuted-digits | split-mnist | lang-domains, or a "
            "registered morpho grow task that is a task stream."
        ),
    ] = None,
    scenario: Annotated[
        Optional[str],
        typer.Option(
            help="task | domain | class (incremental); default: class for the digit "
            "streams, domain for lang-domains."
        ),
    ] = None,
    tasks: Annotated[
        Optional[int], typer.Option(help="permuted-digits: permutations (0: 10).")
    ] = None,
    methods: Annotated[
        Optional[str],
        typer.Option(
            help="Comma-separated methods (default analytic,naive): analytic (a closed-form "
            "ridge head over every cell of an untrained tissue, image streams), "
            "analytic-no-cell-readout (over the pooled readout), random-features (the same "
            "head over a random ReLU layer of the pixels, equal floats), naive, ewc, si, lwf, "
            "replay, replay-floats (replay in the analytic learner's floats), joint "
            "(converged budget), joint-short (the stream's budget), neurogenesis (naive with "
            "the growth scheduler: task_change); more from the morpho.cl_methods entry "
            "points. Each gradient method runs on the trainer of morpho grow."
        ),
    ] = None,
    seeds: Annotated[
        Optional[int], typer.Option(help="Seeds per method (default 1); mean ± std.")
    ] = None,
    budget: Annotated[
        Optional[str],
        typer.Option(
            help="Optimizer steps a task, the same for every method: short (--epochs "
            "passes over the task, default) or converged (500 steps)."
        ),
    ] = None,
    epochs: Annotated[
        Optional[int], typer.Option(help="short budget: passes over each task (default 4).")
    ] = None,
    memory: Annotated[
        Optional[int], typer.Option(help="replay: stored examples per class (default 10).")
    ] = None,
    tune: Annotated[
        Optional[bool],
        typer.Option(
            help="Choose each method's hyperparameters on the validation split carved from "
            "the training data (seed 0; the grids are recorded in results.json)."
        ),
    ] = None,
    config: Annotated[
        Optional[Path],
        typer.Option(
            help="TOML file: the keys of StreamConfig, [learn], [network], [train] and "
            "[growth] tables; flags override it."
        ),
    ] = None,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("runs/stream"),
    data: Annotated[
        Optional[list[Path]],
        typer.Option(help="lang-domains: extra text file (a domain each; repeatable)."),
    ] = None,
    device: Annotated[Optional[str], typer.Option(help="cpu, cuda, cuda:N.")] = None,
    max_train: Annotated[
        Optional[int], typer.Option(help="Training examples kept per task (0: all).")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Replace a non-empty output folder (the whole folder).")
    ] = False,
) -> None:
    """Learn a stream of tasks one after another; print and save the continual-learning metrics."""
    from morpho.cli import fail
    from morpho.rundir import RunDir
    from morpho.sims.stream_run import run_stream

    from .commands import comma_list

    flags = {
        "stream": stream,
        "scenario": scenario,
        "tasks": tasks,
        "methods": None if methods is None else comma_list(methods),
        "seeds": seeds,
        "budget": budget,
        "tune": tune,
        "data": None if data is None else [str(p) for p in data],
        "max_train": max_train,
        "learn": {"epochs": epochs, "memory": memory},
        "train": {"device": device},
    }
    try:
        cfg = stream_config(config, flags)
        check_device(cfg.train.device)
        check_data(cfg.stream, [Path(p) for p in cfg.data])
        check_methods(cfg)
        owner = RunDir(out, overwrite=overwrite)  # held until the command returns
        owner.claim()
    except ValueError as e:
        fail(str(e))
        return
    except OSError as e:
        fail(f"{e.strerror or e} ({e.filename}); expected a writable output folder")
        return
    typer.echo(
        f"stream {cfg.stream} ({cfg.scenario}-incremental), methods {', '.join(cfg.methods)}, "
        f"{cfg.seeds} seed(s), {cfg.budget} budget"
        f"{' (tuned on validation)' if cfg.tune else ''} → {out}"
    )
    run_stream(cfg, out, echo=typer.echo)


def stream_config(path: Path | None, flags: dict[str, Any]) -> StreamConfig:
    """The :class:`~morpho.sims.stream_run.StreamConfig` of a TOML file (if any) with the
    flags that were given over it, through ``morpho grow``'s loader and coercer: unknown
    keys and wrong types raise ``ValueError`` naming what was expected."""
    from morpho.config import _deep_merge, from_dict, load_toml
    from morpho.sims.stream_run import StreamConfig, plain_config  # noqa: F811

    data = load_toml(path) if path is not None else {}
    tables = ("learn", "train")
    given = {k: v for k, v in flags.items() if v is not None and k not in tables}
    merged = _deep_merge(data, given)
    for table in tables:
        values = {k: v for k, v in flags.get(table, {}).items() if v is not None}
        merged = _deep_merge(merged, {table: values} if values else {})
    lang = merged.get("stream") == "lang-domains"
    merged.setdefault("scenario", "domain" if lang else "class")
    # a partial table fills in over the stream's defaults, not over the bare dataclass's
    return from_dict(StreamConfig, _deep_merge(plain_config(StreamConfig()), merged), "")


def check_methods(cfg: Any) -> None:
    """``ValueError`` if a method cannot run on the stream (a closed-form method on a
    language stream, heads too wide to hold, replay-floats without image floats)."""
    from morpho.sims.cl_methods import CL_METHODS
    from morpho.sims.stream_run import build_task_stream, closed_form_learner, equal_float_memory

    task = build_task_stream(cfg)
    for name in cfg.methods:
        if CL_METHODS.get(name).closed_form:
            if task.kind != "classify":
                raise ValueError(
                    f"method {name!r} solves image heads in closed form; {task.name} is a "
                    "language stream: expected a gradient method (naive, ewc, si, lwf, replay)"
                )
            closed_form_learner(cfg, name, task, 0)
        if name == "replay-floats":
            equal_float_memory(cfg, task)


def check_device(device: str) -> None:
    """``ValueError`` unless ``device`` names a torch device this machine has."""
    import re

    import torch

    if re.fullmatch(r"cpu|mps|cuda(:\d+)?", device) is None:
        raise ValueError(f"unknown device {device!r}; expected cpu, cuda, cuda:N or mps")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available; expected cpu")


def check_data(stream: str, paths: list[Path]) -> None:
    """``ValueError`` unless each ``--data`` file is text long enough for a domain."""
    import inspect

    from morpho.sims.lang import read_text_file
    from morpho.sims.streams import lang_domains

    if paths and stream != "lang-domains":
        raise ValueError(f"--data is for the lang-domains stream; got --stream {stream}")
    seq_len = inspect.signature(lang_domains).parameters["seq_len"].default
    need = 4 * (seq_len + 1)  # two training windows and one test window after the 70/30 cut
    for p in paths:
        n = len(read_text_file(str(p)))
        if n < need:
            raise ValueError(f"--data file {str(p)!r} has {n} characters; expected at least {need}")
