"""CLI command ``morpho stream``: continual-learning task streams (see morpho/sims/streams.py).

    morpho stream --stream split-digits --scenario class \\
        --methods morpho,naive,ewc,si,lwf,replay,joint --seeds 3 --budget converged --tune
    morpho stream --config my_stream.toml --seeds 5        # flags override the file

prints the mean ± std table and writes ``results.json``, heatmaps and morpho's run
directories under ``--out`` (see :mod:`morpho.sims.stream_run`).
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
        typer.Option(help="split-digits | permuted-digits | split-mnist | lang-domains."),
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
            help="Comma-separated methods (default morpho,naive): morpho (analytic heads "
            "over every cell's state), morpho-no-cell-readout (over the pooled readout), "
            "morpho-gradient (the gradient learner) and its ablations morpho-gradient-no-"
            "growth/-viscosity/-floor/-routing/-sleep/-distill/-head-correction, "
            "naive, ewc, si, lwf, replay, replay-floats (replay in morpho's floats), joint, "
            "separate."
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
            help="TOML file: the keys of StreamConfig, \\[learn] and \\[morpho] tables; flags "
            "override it."
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
    from morpho.sims.streams import build_stream

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
        "learn": {"epochs": epochs, "memory": memory, "device": device},
    }
    try:
        cfg = stream_config(config, flags)
        check_device(cfg.learn.device)
        check_data(cfg.stream, [Path(p) for p in cfg.data])
        built = build_stream(cfg.stream, cfg.scenario, cfg.tasks, cfg.data, max_train=cfg.max_train)
        check_analytic(cfg, built)
        owner = RunDir(out, overwrite=overwrite)  # held until the command returns
        owner.claim()
    except ValueError as e:
        fail(str(e))
        return
    except ImportError as e:  # an optional dependency of the stream (an extra)
        from morpho.extras import missing_extra

        fail(missing_extra(e, "this stream"))
        return
    except OSError as e:
        fail(f"{e.strerror or e} ({e.filename}); expected a writable output folder")
        return
    typer.echo(
        f"stream {cfg.stream} ({cfg.scenario}-incremental), methods {', '.join(cfg.methods)}, "
        f"{cfg.seeds} seed(s), {cfg.budget} budget"
        f"{' (tuned on validation)' if cfg.tune else ''} → {out}"
    )
    run_stream(cfg, out, echo=typer.echo, stream=built)


def stream_config(path: Path | None, flags: dict[str, Any]) -> StreamConfig:
    """The :class:`~morpho.sims.stream_run.StreamConfig` of a TOML file (if any) with the
    flags that were given over it, through ``morpho grow``'s loader and coercer: unknown
    keys and wrong types raise ``ValueError`` naming what was expected."""
    from morpho.config import _deep_merge, from_dict, load_toml
    from morpho.sims.stream_run import StreamConfig  # noqa: F811

    data = load_toml(path) if path is not None else {}
    given = {k: v for k, v in flags.items() if v is not None and k != "learn"}
    learn = {k: v for k, v in flags["learn"].items() if v is not None}
    merged = _deep_merge(_deep_merge(data, given), {"learn": learn} if learn else {})
    merged.setdefault("methods", ["morpho", "naive"])
    lang = merged.get("stream") == "lang-domains"
    merged.setdefault("scenario", "domain" if lang else "class")
    return from_dict(StreamConfig, merged, "")


def check_analytic(cfg: Any, stream: Any) -> None:
    """``ValueError`` if a morpho method's analytic heads would read too many features."""
    from dataclasses import replace

    from morpho.sims.morpho_cl import ABLATIONS, analytic_dim

    if stream.kind != "classify":
        return
    for name in cfg.methods:
        cl = replace(cfg.morpho, **ABLATIONS.get(name, {"analytic": False}))
        if cl.analytic:
            analytic_dim(stream, cfg.learn, cl)


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
