"""The split image streams (split-digits, split-mnist) in their three scenarios.

Laws: each task holds exactly two classes (0/1, 2/3, …) and its train and test images
are disjoint; the tasks together are the dataset's fixed held-out split, nothing more and
nothing lost; the scenarios share the images and differ only in targets and heads; the
stream reports its input shape; a validation stream trains on the training split less its
validation part and scores on that part, never touching the test split; bad names are
refused with the choices listed.
"""

from __future__ import annotations

import pytest
import torch

from morpho.sims.image_data import held_out_split
from morpho.sims.streams import SPLIT_DATASETS, build_stream

SIZES = {"split-digits": (1257, 540, (8, 8)), "split-mnist": (4000, 1000, (28, 28))}


def _rows(x: torch.Tensor) -> set[bytes]:
    return {r.numpy().tobytes() for r in x.flatten(1)}


@pytest.mark.parametrize("name", sorted(SPLIT_DATASETS))
def test_split_streams_are_the_held_out_split_cut_into_class_pairs(name: str) -> None:
    s = build_stream(name, "class")
    n_train, n_test, shape = SIZES[name]
    assert s.name == name and s.input_shape == shape
    assert [k.classes for k in s.tasks] == [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]
    for k in s.tasks:
        assert tuple(k.x_train.shape[1:]) == shape and k.x_train.dtype == torch.float32
        assert set(k.y_train.tolist()) == set(k.classes) == set(k.y_test.tolist())
        assert not _rows(k.x_train) & _rows(k.x_test), "a test image is also a train image"
    x_tr, y_tr, x_te, y_te = held_out_split(SPLIT_DATASETS[name])
    assert sum(len(k.x_train) for k in s.tasks) == len(x_tr) == n_train
    assert sum(len(k.x_test) for k in s.tasks) == len(x_te) == n_test
    for k in s.tasks:  # each task is the held-out split's rows of its two classes, in order
        keep = torch.isin(y_te, torch.tensor(k.classes))
        assert torch.equal(k.x_test, x_te[keep]) and torch.equal(k.y_test, y_te[keep])
    assert s.head_size == 10 and s.n_heads == 1 and not s.task_id_given


@pytest.mark.parametrize("name", sorted(SPLIT_DATASETS))
def test_split_scenarios_share_the_images_and_differ_in_the_readout(name: str) -> None:
    cls, task, domain = (build_stream(name, sc) for sc in ("class", "task", "domain"))
    assert [k.head for k in task.tasks] == [0, 1, 2, 3, 4] and task.n_heads == 5
    assert [k.head for k in domain.tasks] == [0] * 5 and domain.n_heads == 1
    assert task.head_size == domain.head_size == 2 and task.task_id_given
    for c, a, b in zip(cls.tasks, task.tasks, domain.tasks, strict=True):
        assert torch.equal(c.x_train, a.x_train) and torch.equal(c.x_test, b.x_test)
        assert torch.equal(a.y_train, c.y_train % 2) and torch.equal(b.y_test, c.y_test % 2)
        assert a.classes == b.classes == (0, 1)


def test_max_train_keeps_the_first_examples_of_each_mnist_task() -> None:
    full, cut = build_stream("split-mnist", "class"), build_stream("split-mnist", max_train=50)
    for a, b in zip(full.tasks, cut.tasks, strict=True):
        assert torch.equal(b.x_train, a.x_train[:50]) and torch.equal(b.x_test, a.x_test)


@pytest.mark.parametrize("name", ["split-mnist", "permuted-digits"])
def test_validation_streams_score_on_the_validation_split_and_never_see_the_test(
    name: str,
) -> None:
    held, val = (
        build_stream(name, "class", n_tasks=2),
        build_stream(name, "class", n_tasks=2, validation=True),
    )
    for h, v in zip(held.tasks, val.tasks, strict=True):
        assert v.classes == h.classes
        assert len(v.x_train) + len(v.x_test) == len(h.x_train)
        assert _rows(v.x_train) | _rows(v.x_test) == _rows(h.x_train)  # the training split
        assert not _rows(v.x_train) & _rows(v.x_test)
        assert not (_rows(v.x_train) | _rows(v.x_test)) & _rows(h.x_test)


def test_bad_stream_and_scenario_names_list_the_choices() -> None:
    choices = "expected one of: split-digits, permuted-digits, split-mnist, lang-domains"
    with pytest.raises(ValueError, match=choices):
        build_stream("split-mnst")
    with pytest.raises(ValueError, match="unknown scenario 'domian'; expected one of: task"):
        build_stream("split-mnist", "domian")
    with pytest.raises(ValueError, match="validation streams are image streams; expected"):
        build_stream("lang-domains", "domain", validation=True)
    with pytest.raises(ValueError, match="max_train must be >= 0"):
        build_stream("split-mnist", max_train=-1)
