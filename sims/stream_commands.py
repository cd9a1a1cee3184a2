"""CLI command ``morpho stream``: continual-learning task streams (see sims/streams.py)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add ``stream`` to ``app``."""
