"""CLI command ``morpho stream``: continual-learning task streams (see morpho/sims/streams.py).

    morpho stream --stream split-digits --scenario class \\
        --methods morpho,naive,ewc,si,lwf,replay,joint --seeds 3

prints the mean ± std table and writes ``results.json``, heatmaps and morpho's run
directories under ``--out`` (see :mod:`morpho.sims.stream_run`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def register(app: typer.Typer) -> None:
    """Add ``stream`` to ``app``."""
    app.command()(stream)


def stream(
    stream: Annotated[
        str, typer.Option(help="split-digits | permuted-digits | lang-domains.")
    ] = "split-digits",
    scenario: Annotated[
        Optional[str],
        typer.Option(
            help="task | domain | class (incremental); default: class for the digit "
            "streams, domain for lang-domains."
        ),
    ] = None,
    tasks: Annotated[int, typer.Option(help="permuted-digits: permutations (0: 10).")] = 0,
    methods: Annotated[
        str,
        typer.Option(
            help="Comma-separated methods: morpho, its ablations "
            "morpho-no-growth/-viscosity/-routing/-sleep, naive, ewc, "
            "si, lwf, replay, joint, separate."
        ),
    ] = "morpho,naive",
    seeds: Annotated[int, typer.Option(help="Seeds per method; the table shows mean ± std.")] = 1,
    epochs: Annotated[int, typer.Option(help="Passes over each task's training split.")] = 4,
    memory: Annotated[int, typer.Option(help="replay: stored examples per class.")] = 10,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("runs/stream"),
    data: Annotated[
        Optional[list[Path]],
        typer.Option(help="lang-domains: extra text file (a domain each; repeatable)."),
    ] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N.")] = "cpu",
    max_train: Annotated[int, typer.Option(help="Training examples kept per task (0: all).")] = 0,
    overwrite: Annotated[
        bool, typer.Option(help="Replace a non-empty output folder (the whole folder).")
    ] = False,
) -> None:
    """Learn a stream of tasks one after another; print and save the continual-learning metrics."""
    from morpho.cli import fail
    from morpho.rundir import RunDir
    from morpho.sims.continual import LearnConfig
    from morpho.sims.stream_run import StreamConfig, run_stream
    from morpho.sims.streams import build_stream

    from .commands import comma_list

    scenario = scenario or ("domain" if stream == "lang-domains" else "class")
    try:
        check_device(device)
        check_data(stream, data or [])
        names = tuple(comma_list(methods))
        learn = LearnConfig(epochs=epochs, memory=memory, device=device)
        cfg = StreamConfig(
            stream=stream,
            scenario=scenario,
            tasks=tasks,
            methods=names,
            seeds=seeds,
            data=tuple(str(p) for p in data or ()),
            max_train=max_train,
            learn=learn,
        )
        built = build_stream(cfg.stream, cfg.scenario, cfg.tasks, cfg.data, max_train=max_train)
        owner = RunDir(out, overwrite=overwrite)  # held until the command returns
        owner.claim()
    except ValueError as e:
        fail(str(e))
        return
    except OSError as e:
        fail(f"{e.strerror or e} ({e.filename}); expected a writable output folder")
        return
    typer.echo(
        f"stream {stream} ({scenario}-incremental), methods {', '.join(names)}, "
        f"{seeds} seed(s), {epochs} epochs per task → {out}"
    )
    run_stream(cfg, out, echo=typer.echo, stream=built)


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
