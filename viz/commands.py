"""CLI commands of the rendering side (``morpho render``, ``plot``, ``export``); see viz/."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the viz commands to ``app`` (pyvista is imported only when a command runs)."""
