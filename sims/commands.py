"""CLI commands of the task side: ``morpho sample`` (and later ``bench``, ``stream``).

Registered through the ``morpho.commands`` entry point, so the engine CLI never imports
``morpho.sims`` itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command()(sample)


def sample(
    run: Annotated[Path, typer.Argument(help="Run directory written by morpho grow.")],
    prompt: Annotated[str, typer.Option(help="Text to continue.")] = "",
    length: Annotated[int, typer.Option(help="Characters to generate.")] = 200,
    temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = 0.8,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
) -> None:
    """Print text sampled from a lang run's final network."""
    from morpho.checkpoint import load_network
    from morpho.cli import fail
    from morpho.sims.lang import sample_text

    try:
        if length < 1 or temperature <= 0:
            raise ValueError(f"--length must be >= 1 and --temperature > 0; got {length}, {temperature}")
        net, payload = load_network(run / "checkpoints" / "final.pt")
        info = payload["extra"].get("task", {})
        if info.get("task") != "lang":
            raise ValueError(f"run {str(run)!r} is a {info.get('task')!r} run; expected a lang run")
        task = _VocabOnly(info["chars"])
    except ValueError as e:
        fail(str(e))
        return
    typer.echo(sample_text(net, task, prompt, length, temperature, seed))


class _VocabOnly:
    """Encode/decode with a run's saved character set, without reloading the corpus."""

    def __init__(self, chars: str) -> None:
        self.chars = chars
        self.index = {c: i for i, c in enumerate(chars)}

    def encode(self, text: str):  # type: ignore[no-untyped-def]
        import torch

        return torch.tensor([self.index.get(c, 0) for c in text], dtype=torch.long)

    def decode(self, ids) -> str:  # type: ignore[no-untyped-def]
        return "".join(self.chars[int(i)] for i in ids)
