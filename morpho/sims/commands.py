"""CLI commands of the task side: ``morpho sample``, ``morpho bench``.

Registered through the ``morpho.commands`` entry point, so the engine CLI never imports
``morpho.sims`` itself.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Optional

import typer

from morpho.config import PRESETS
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
from morpho.trainer import MAX_SEED

from .lang import BENCH_PRESETS

MAX_SAMPLE = 100_000  # characters ``sample`` generates at most
# every name ``bench --preset`` accepts: the run presets and the bench presets
BenchPresetOpt = Annotated[
    str,
    typer.Option(
        help=f"{' | '.join(PRESETS)}, or a bench preset (lang): {' | '.join(BENCH_PRESETS)}."
    ),
]


def register(app: typer.Typer) -> None:
    app.command()(sample)
    app.command()(bench)


def sample(
    run: Annotated[Path, typer.Argument(help="Run directory written by morpho grow.")],
    prompt: Annotated[str, typer.Option(help="Text to continue.")] = "",
    length: Annotated[int, typer.Option(help="Characters to generate.")] = 200,
    temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = 0.8,
    seed: Annotated[int, typer.Option(min=0, max=MAX_SEED, help="Sampling seed.")] = 0,
) -> None:
    """Print text sampled from a lang run's final network."""
    from morpho.checkpoint import load_network
    from morpho.cli import fail

    from .lang import CharVocab, sample_text

    try:
        if not 1 <= length <= MAX_SAMPLE or not 0 < temperature < math.inf:
            raise ValueError(
                f"--length must be in [1, {MAX_SAMPLE}] and --temperature a number > 0; "
                f"got {length}, {temperature}"
            )
        net, payload = load_network(run / "checkpoints" / "final.pt")
        info = payload["extra"].get("task", {})
        if info.get("task") != "lang":
            raise ValueError(f"run {str(run)!r} is a {info.get('task')!r} run; expected a lang run")
        vocab = CharVocab(info["chars"])
    except ValueError as e:
        fail(str(e))
        return
    unknown = sorted(set(prompt) - set(vocab.chars))
    if unknown:
        typer.echo(
            f"morpho: dropped {sum(prompt.count(c) for c in unknown)} prompt character(s) "
            f"not in the run's vocabulary: {', '.join(map(repr, unknown[:10]))}",
            err=True,
        )
        prompt = "".join(c for c in prompt if c not in unknown)
    typer.echo(sample_text(net, vocab, prompt, length, temperature, seed))


def bench(
    task: TaskOpt = "lang",
    preset: BenchPresetOpt = "small",
    steps: StepsOpt = None,
    corpus: CorpusOpt = None,
    data: DataOpt = None,
    device: DeviceOpt = None,
    out: Annotated[Optional[Path], typer.Option(help="Output (runs/bench-<task>-N).")] = None,
    seed: SeedOpt = None,
    config: ConfigOpt = None,
    overwrite: OverwriteOpt = False,
    rows: Annotated[
        Optional[str],
        typer.Option(
            help="Comma-separated standard rows to train (morpho always runs), e.g. 'morpho,gru'."
        ),
    ] = None,
    mechanisms: Annotated[
        Optional[str],
        typer.Option(
            help="Comma-separated mechanisms, one 'morpho+<name>' row each, or 'all': "
            "clocks, series, wormholes, lyapunov, knife, pathnorm, ponder."
        ),
    ] = None,
) -> None:
    """Train morpho, morpho-fixed, each rule ablated, a Transformer and a GRU, count an
    n-gram (lang); print a table. On
    digits and mnist: morpho-reset, an MLP and (with gromo installed) GroMo instead.

    With --mechanisms, one more row per mechanism of the thermodynamic picture (on), to
    compare with the morpho row (all off)."""
    from rich.console import Console

    from morpho.cli import fail, preflight
    from morpho.grow import default_run_path
    from morpho.rundir import RunDir

    from .bench import MECHANISMS, bench_config, mechanism_config, render_table, row_names
    from .bench import bench as run_bench

    try:
        cfg, lrs = bench_config(
            preset,
            config,
            {
                "task": task,
                "task_options": {"data": str(data) if data else None, "corpus": corpus},
                "train": {"steps": steps, "seed": seed, "device": device},
                "network": {"seed": seed},
            },
        )
        path = out or default_run_path(f"bench-{cfg.task}")
        chosen = comma_list(mechanisms)
        mechs = list(MECHANISMS) if chosen == ["all"] else chosen
        row_names(cfg, comma_list(rows) or None, mechs)  # every check before the folder is made
        for m in mechs:
            mechanism_config(cfg, m)
        preflight(cfg, path)
        owner = RunDir(path, overwrite=overwrite)  # held until the command returns
        owner.claim()
        result = run_bench(
            cfg,
            path,
            overwrite=overwrite,
            log=lambda m: typer.echo(m, err=True),
            rows=comma_list(rows) or None,
            mechanisms=mechs,
            lrs=lrs,
        )
    except ValueError as e:
        fail(str(e))
        return
    except ImportError as e:  # an optional dependency of the task (an extra)
        from morpho.extras import missing_extra

        fail(missing_extra(e, "this bench"))
        return
    except OSError as e:
        fail(f"{e.strerror or e} ({e.filename}); expected a writable output folder")
        return
    Console(width=140).print(render_table(result["rows"], f"morpho bench · {path}"))
    typer.echo(f"wrote {path / 'bench.json'}")


def comma_list(value: str | None) -> list[str]:
    """``"a, b,,c"`` → ``["a", "b", "c"]``: the names a comma-separated option lists."""
    return [v.strip() for v in (value or "").split(",") if v.strip()]
