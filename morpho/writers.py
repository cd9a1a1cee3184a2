"""Run writers: trainer callbacks, built by name, that mirror a run directory as it is written.

    morpho grow --tensorboard         # build_writers(["tensorboard"]) joins the callbacks

A writer is a factory taking no arguments and returning a :class:`~morpho.callbacks.Callback`
that finds the run under ``trainer.run``; it raises ``ValueError`` naming what to install
when a package it needs is missing, before anything is written. Writers register under the
``morpho.run_writers`` entry-point group, so the engine imports none of them (the TensorBoard
writer is ``morpho.viz.tensorboard.LiveTensorBoard``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from morpho.callbacks import Callback
from morpho.registry import Registry

RUN_WRITERS: Registry[Callable[[], Callback]] = Registry("run writer", "morpho.run_writers")


def build_writers(names: Sequence[str]) -> list[Callback]:
    """One callback per writer name; ``ValueError`` for an unknown name or a missing package."""
    return [RUN_WRITERS.get(name)() for name in names]
