"""Progress bars of a training run: a rich bar with loss, cells and tokens/s, or none."""

from __future__ import annotations

import math


class NoBar:
    """The bar of a quiet run: every call does nothing."""

    def update(self, loss: float, cells: int | None, tps: float) -> None: ...

    def advance(self) -> None: ...

    def __enter__(self) -> NoBar:
        return self

    def __exit__(self, *exc: object) -> None: ...


class RichBar(NoBar):
    """A rich progress bar showing loss, cells and tokens/s."""

    def __init__(self, total: int, done: int) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("[bold]grow"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TextColumn("loss {task.fields[loss]:.3f}"),
            TextColumn("cells {task.fields[cells]}"),
            TextColumn("{task.fields[tps]:,.0f} tok/s"),
            TimeRemainingColumn(),
        )
        self.task = self.progress.add_task(
            "grow", total=total, completed=done, loss=math.nan, cells=0, tps=0.0
        )

    def update(self, loss: float, cells: int | None, tps: float) -> None:
        self.progress.update(self.task, loss=loss, cells=cells, tps=tps)

    def advance(self) -> None:
        self.progress.advance(self.task)

    def __enter__(self) -> RichBar:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


def progress_bar(show: bool, total: int, done: int) -> NoBar:
    """A :class:`RichBar` when ``show``, else a :class:`NoBar`."""
    return RichBar(total, done) if show else NoBar()
