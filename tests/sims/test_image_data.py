"""The image splits: fixed, stratified, disjoint, and the stream's test split unchanged."""

import pytest
import torch

from morpho.sims.image_data import held_out_split, image_splits, load_images


@pytest.mark.parametrize("name", ["digits", "mnist"])
def test_splits_are_disjoint_stratified_and_fixed(name):
    s = image_splits(name)
    x, _ = load_images(name)
    assert len(s.x_train) + len(s.x_val) + len(s.x_test) == len(x)
    rows = lambda t: {bytes(r.numpy().tobytes()) for r in t}  # noqa: E731
    assert not rows(s.x_val) & rows(s.x_test) and not rows(s.x_train) & rows(s.x_test)
    for part in (s.y_train, s.y_val, s.y_test):  # every class in every split, in proportion
        share = torch.bincount(part, minlength=s.n_classes).float() / len(part)
        assert float(share.min()) > 0.5 / s.n_classes
    assert float(s.x_train.min()) >= 0.0 and float(s.x_train.max()) <= 1.0
    again = image_splits(name)
    assert torch.equal(again.x_val, s.x_val) and torch.equal(again.y_test, s.y_test)
    assert torch.equal(held_out_split(name)[3], s.y_test)


def test_bad_names_and_fractions_are_refused():
    with pytest.raises(ValueError, match="expected one of: digits, mnist"):
        load_images("cifar")
    with pytest.raises(ValueError, match=r"val_fraction must be in \(0, 1\)"):
        image_splits("digits", val_fraction=1.5)
