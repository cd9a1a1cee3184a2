"""Typer option types shared by the commands that train (``grow``; ``bench`` in morpho.sims).

A plain module with no side effects, so command groups can import it without importing
the CLI (which loads every command group when it is imported).
"""

from pathlib import Path
from typing import Annotated, Optional

import typer

from morpho.trainer import MAX_SEED

TaskOpt = Annotated[str, typer.Option(help="Task to learn (morpho.tasks registry).")]
StepsOpt = Annotated[Optional[int], typer.Option(help="Training steps.")]
SeedOpt = Annotated[
    Optional[int], typer.Option(min=0, max=MAX_SEED, help="Seed for data, init and noise.")
]
DeviceOpt = Annotated[Optional[str], typer.Option(help="cpu, cuda, cuda:N.")]
DataOpt = Annotated[Optional[Path], typer.Option(help="Train on this UTF-8 text file.")]
CorpusOpt = Annotated[Optional[str], typer.Option(help="pydoc | stdlib (lang task).")]
ConfigOpt = Annotated[Optional[Path], typer.Option(help="TOML config file.")]
OverwriteOpt = Annotated[bool, typer.Option(help="Reuse a non-empty output directory.")]
