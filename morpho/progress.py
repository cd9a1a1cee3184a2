"""Progress of a training run: a rich bar on a terminal, plain lines in a log file, or none.

    with progress_bar(show=True, total=steps, done=step) as bar:   # RichBar or LineBar
        ...; bar.update(loss, cells, tokens_per_s); bar.advance()

When stdout is not a terminal (``morpho grow > run.log``) a bar cannot redraw, so
:class:`LineBar` prints one line soon after the start and then one every
``MORPHO_PROGRESS_EVERY`` seconds (default 30; 0 turns them off): step/total, loss, cells,
tokens/s and the estimated time left. :class:`StepLines` prints the same lines from a
trainer callback (``morpho bench``, one bar per row). Progress never stops a run: a line
that cannot be written (stdout full or closed) ends the lines, not the training.
"""

from __future__ import annotations

import math
import os
import sys
import time
from typing import Any

from morpho.callbacks import Callback, StepResult

EVERY_ENV = "MORPHO_PROGRESS_EVERY"
DEFAULT_EVERY = 30.0  # seconds between lines in a log file


def line_interval() -> float:
    """Seconds between progress lines (``MORPHO_PROGRESS_EVERY``; 0: no lines).

    Raises:
        ValueError: the variable is set to something other than a number >= 0.
    """
    text = os.environ.get(EVERY_ENV, "").strip()
    if not text:
        return DEFAULT_EVERY
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value < math.inf:
        raise ValueError(
            f"{EVERY_ENV} must be a number of seconds >= 0 (0: no progress lines); got {text!r}"
        )
    return value


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


class LineBar(NoBar):
    """Plain progress lines for a log file (see the module docstring).

    Args:
        total: the run's steps; done: steps already done (a resumed run).
        every: seconds between lines (0: none); label: the line's first word.
    """

    def __init__(self, total: int, done: int, every: float, label: str = "grow") -> None:
        self.total, self.done, self.start_step = total, done, done
        self.every, self.label = every, label
        self.start = time.monotonic()
        self.last: float | None = None  # when the last line was printed
        self.printed_step = -1
        self.figures: tuple[float, int | None, float] | None = None

    def due(self) -> bool:
        """Whether a line is due now (the first one comes at the first update)."""
        if not self.every:
            return False
        return self.last is None or time.monotonic() - self.last >= self.every

    def update(self, loss: float, cells: int | None, tps: float) -> None:
        self.figures = (loss, cells, tps)
        if self.due():
            self.emit()

    def advance(self) -> None:
        self.done += 1

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None and self.every and self.printed_step != self.done:
            self.emit()  # the last line: where the run ended

    def emit(self) -> None:
        """Print one line now (nothing more once stdout failed)."""
        self.last = time.monotonic()
        self.printed_step = self.done
        try:
            print(self.line(), file=sys.stdout, flush=True)
        except (OSError, ValueError):  # stdout full or closed: progress stops, not the run
            self.every = 0.0

    def line(self) -> str:
        """``grow 120/1000 loss 2.345 cells 14 1,234 tok/s eta 5m12s``."""
        parts = [f"{self.label} {self.done}/{self.total}"]
        if self.figures is not None:
            loss, cells, tps = self.figures
            parts.append(f"loss {loss:.3f}")
            if cells is not None:
                parts.append(f"cells {cells}")
            parts += [f"{tps:,.0f} tok/s"] if tps else []
        ran, elapsed = self.done - self.start_step, time.monotonic() - self.start
        if ran > 0 and self.done < self.total:
            parts.append(f"eta {_duration(elapsed / ran * (self.total - self.done))}")
        return " ".join(parts)


class StepLines(Callback):
    """Trainer callback printing :class:`LineBar` lines for a run without a bar of its own
    (a ``morpho bench`` row, labelled with its name)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar: LineBar | None = None

    def on_train_start(self, trainer: Any) -> None:
        self.bar = LineBar(trainer.cfg.steps, trainer.step, line_interval(), self.label)

    def on_step_end(self, trainer: Any, step: int, result: StepResult) -> None:
        if self.bar is None:
            return
        self.bar.advance()
        if self.bar.due():  # the loss is read (a host sync) only for a line
            cells = trainer.net.tissue.num_nodes if trainer.growing else None
            self.bar.update(float(result.ce), cells, trainer.tokens_per_s)

    def on_train_end(self, trainer: Any, summary: dict[str, Any]) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


def _duration(seconds: float) -> str:
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def progress_bar(show: bool, total: int, done: int) -> NoBar:
    """A :class:`RichBar` on a terminal, :class:`LineBar` lines otherwise (when ``show``),
    else a :class:`NoBar`."""
    if not show:
        return NoBar()
    if sys.stdout.isatty():
        return RichBar(total, done)
    return LineBar(total, done, line_interval())
