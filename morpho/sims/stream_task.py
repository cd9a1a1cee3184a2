"""A task stream as one ``morpho grow`` task, and the task wrappers of continual learning.

The driver of ``morpho stream`` trains every gradient method on the one
:class:`~morpho.trainer.Trainer`; what it needs from a task, beyond the trainer's
:class:`~morpho.tasks.Task`, is the :class:`TaskStream` protocol: how many tasks, how many
steps each, and each task's data on its own (to score the accuracy matrix, fill a replay
memory, estimate a Fisher). :class:`StreamOnTrainer` gives it to the built-in streams of
:mod:`morpho.sims.streams`; a third party's registered task (``morpho.tasks``) that has
these attributes runs in ``morpho stream`` as it is.

    task = StreamOnTrainer(fit, val, steps_per_task=28)
    task.at_step(60)                       # the trainer calls this: now task 2
    x, y = task.batch("train", 32, task.seq_len, gen)   # (32, 8, 8), (32, 1): task 2's data
    task.task_batches(0, "test", 256)      # task 0's test split, in order

:class:`ReplayTask` (experience replay as a task wrapper: stored examples mixed into every
batch) and :class:`JointTask` (every task at once: the upper bound) wrap any of them.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import Tensor

from morpho.sims.streams import Stream

Batch = tuple[Tensor, Tensor]


class TaskStream(Protocol):
    """What ``morpho stream`` needs from a task (besides :class:`morpho.tasks.Task`)."""

    name: str
    kind: str  # "classify" (accuracy) or "lm" (bits per token)
    vocab_size: int
    n_tasks: int
    steps_per_task: int  # optimizer steps each task gets; ``at_step`` switches on them

    def at_step(self, step: int) -> None: ...

    def batch(
        self, split: str, batch_size: int, seq_len: int, generator: torch.Generator
    ) -> Batch: ...

    def eval_batches(
        self, n_batches: int, batch_size: int, seq_len: int, split: str = "val"
    ) -> list[Batch]: ...

    def describe(self) -> dict[str, object]: ...

    def task_names(self) -> list[str]: ...

    def task_batches(self, t: int, split: str, batch_size: int) -> list[Batch]:
        """Task ``t``'s whole ``split`` ("train", "val" or "test"), in order."""
        ...

    def task_columns(self, t: int) -> list[int]:
        """The output columns task ``t`` is scored on (its head, or its classes)."""
        ...

    def draw(self, t: int, n: int, generator: torch.Generator) -> Batch:
        """``n`` training examples of task ``t``, drawn with replacement."""
        ...


def steps_for(stream: Stream, epochs: int, batch_size: int) -> int:
    """``epochs`` passes over the mean task's training split in batches of ``batch_size``."""
    sizes = [len(k.x_train) for k in stream.tasks]
    return max(1, round(epochs * sum(-(-n // batch_size) for n in sizes) / len(sizes)))


class StreamOnTrainer:
    """A :class:`~morpho.sims.streams.Stream` as a trainer task: task ``step //
    steps_per_task`` serves the training batches; ``val`` holds the held-out validation
    split (the stream the trainer's own evaluations read), ``fit`` the test split.

    Images are (B, H, W) rows of pixels (``seq_len`` H, ``input_dim`` W) with targets
    (B, 1) in the scenario's output space (task-incremental: head ``h`` owns columns
    ``h·C … h·C + C − 1``); text windows are (B, T) ids with the next ids as targets.
    """

    def __init__(self, fit: Stream, val: Stream, steps_per_task: int) -> None:
        if steps_per_task < 1:
            raise ValueError(f"steps_per_task must be >= 1; got {steps_per_task}")
        self.stream, self.val = fit, val
        self.name, self.kind = fit.name, fit.kind
        self.n_tasks, self.steps_per_task = len(fit.tasks), steps_per_task
        self.scenario, self.task_id_given = fit.scenario, fit.task_id_given
        self.vocab_size = fit.head_size * (fit.n_heads if fit.task_id_given else 1)
        if fit.kind == "classify":
            self.seq_len, self.input_dim = fit.input_shape
        else:
            self.seq_len = fit.input_shape[0] - 1
        self.current = 0

    def at_step(self, step: int) -> None:
        self.current = min(step // self.steps_per_task, self.n_tasks - 1)

    def task_names(self) -> list[str]:
        return [k.name for k in self.stream.tasks]

    def _pairs(self, t: int, split: str) -> Batch:
        if split not in ("train", "val", "test"):
            raise ValueError(f"unknown split {split!r}; expected one of: train, val, test")
        k = (self.val if split == "val" else self.stream).tasks[t]
        x, y = (k.x_train, k.y_train) if split == "train" else (k.x_test, k.y_test)
        if self.kind == "lm":
            return x[:, :-1], x[:, 1:]
        offset = k.head * self.stream.head_size if self.stream.task_id_given else 0
        return x, (y + offset)[:, None]

    def draw(self, t: int, n: int, generator: torch.Generator) -> Batch:
        """``n`` training examples of task ``t``, drawn with replacement."""
        x, y = self._pairs(t, "train")
        pick = torch.randint(0, len(x), (n,), generator=generator)
        return x[pick], y[pick]

    def batch(self, split: str, batch_size: int, seq_len: int, generator: torch.Generator) -> Batch:
        """Training: the current task's examples; other splits: every task's."""
        if split == "train":
            return self.draw(self.current, batch_size, generator)
        x, y = (torch.cat(p) for p in zip(*self.all_pairs(split), strict=True))
        pick = torch.randint(0, len(x), (batch_size,), generator=generator)
        return x[pick], y[pick]

    def all_pairs(self, split: str) -> list[Batch]:
        return [self._pairs(t, split) for t in range(self.n_tasks)]

    def task_batches(self, t: int, split: str, batch_size: int) -> list[Batch]:
        x, y = self._pairs(t, split)
        return list(zip(x.split(batch_size), y.split(batch_size), strict=True))

    def eval_batches(
        self, n_batches: int, batch_size: int, seq_len: int, split: str = "val"
    ) -> list[Batch]:
        """Every task's whole ``split``, task after task, in chunks of 256."""
        return [b for t in range(self.n_tasks) for b in self.task_batches(t, split, 256)]

    def task_columns(self, t: int) -> list[int]:
        s, k = self.stream, self.stream.tasks[t]
        if s.task_id_given and s.kind == "classify":
            return list(range(k.head * s.head_size, (k.head + 1) * s.head_size))
        return list(k.classes) if s.scenario == "class" else list(range(s.head_size))

    def describe(self) -> dict[str, Any]:
        return {
            "task": self.name,
            "kind": self.kind,
            "scenario": self.stream.scenario,
            "tasks": self.task_names(),
            "steps_per_task": self.steps_per_task,
        }


class _Wrapper:
    """Forwards everything it does not override to the wrapped stream."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class ReplayTask(_Wrapper):
    """Experience replay as a task (Chaudhry et al. 2019, "On tiny episodic memories"):
    when a task ends, ``per_class`` of its training examples a class (a language task:
    ``per_class`` windows) are stored; once the memory holds any, ``share`` of every
    training batch is drawn from it, the rest from the current task, so a step still sees
    ``batch_size`` examples."""

    def __init__(self, inner: Any, per_class: int, share: float, seed: int) -> None:
        super().__init__(inner)
        self.per_class, self.share = per_class, share
        self.generator = torch.Generator().manual_seed(seed + 4099)
        self.memory: list[Batch] = []

    def at_step(self, step: int) -> None:
        self.inner.at_step(step)
        done = min(step // self.inner.steps_per_task, self.inner.n_tasks)
        while len(self.memory) < done:
            self.memory.append(self._keep(len(self.memory)))

    def _keep(self, t: int) -> Batch:
        """``per_class`` random training examples of each of task ``t``'s columns."""
        pairs = self.inner.task_batches(t, "train", 256)
        x, y = torch.cat([b[0] for b in pairs]), torch.cat([b[1] for b in pairs])
        if self.inner.kind != "classify":
            pick = torch.randperm(len(x), generator=self.generator)[: self.per_class]
            return x[pick], y[pick]
        keep = []
        for c in self.inner.task_columns(t):
            rows = (y[:, 0] == c).nonzero()[:, 0]
            keep.append(rows[torch.randperm(len(rows), generator=self.generator)[: self.per_class]])
        pick = torch.cat(keep)
        return x[pick], y[pick]

    def rehearsed(self, batch_size: int) -> int:
        """Examples of a batch drawn from the memory (0 while it is empty)."""
        return round(self.share * batch_size) if self.memory else 0

    def batch(self, split: str, batch_size: int, seq_len: int, generator: torch.Generator) -> Batch:
        n_old = self.rehearsed(batch_size) if split == "train" else 0
        x, y = self.inner.batch(split, batch_size - n_old, seq_len, generator)
        if not n_old:
            return x, y
        mx, my = (torch.cat(p) for p in zip(*self.memory, strict=True))
        pick = torch.randint(0, len(mx), (n_old,), generator=generator)
        return torch.cat([x, mx[pick]]), torch.cat([y, my[pick]])

    def memory_floats(self) -> int:
        """Numbers stored: the inputs of every kept example."""
        return sum(x.numel() for x, _ in self.memory)


class JointTask(_Wrapper):
    """Every task at once (the upper bound; Avalanche's JointTraining): each training
    example comes from a task drawn uniformly; the stream's step schedule is ignored."""

    def at_step(self, step: int) -> None: ...

    def batch(self, split: str, batch_size: int, seq_len: int, generator: torch.Generator) -> Batch:
        if split != "train":
            return self.inner.batch(split, batch_size, seq_len, generator)
        tasks = torch.randint(0, self.inner.n_tasks, (batch_size,), generator=generator)
        n = self.inner.n_tasks
        parts = [self.inner.draw(t, int((tasks == t).sum()), generator) for t in range(n)]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
