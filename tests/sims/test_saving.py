"""Compute-to-target and loss at equal compute: the laws of the growth-saving figures."""

import json

import pytest

from morpho.sims.saving import Curve, flops_to_target, loss_at, paired, read_curve, saving


def test_flops_to_target_interpolates_and_uses_best_so_far():
    c = Curve((1.0, 2.0, 3.0, 4.0), (3.0, 2.0, 2.5, 1.0))
    assert flops_to_target(c, 2.0) == 2.0  # reached at an evaluation
    assert flops_to_target(c, 2.5) == pytest.approx(1.5)  # halfway between 3.0 and 2.0
    assert flops_to_target(c, 1.5) == pytest.approx(3.0 + 0.5 / 1.0)  # best-so-far 2.0 → 1.0
    assert flops_to_target(c, 0.5) is None
    assert flops_to_target(c, 9.0) == 1.0


def test_saving_of_a_run_against_itself_is_zero_and_scales_with_flops():
    scratch = Curve((1.0, 2.0, 3.0), (3.0, 2.0, 1.5))
    assert saving(scratch, scratch) == 0.0
    cheaper = Curve(tuple(0.6 * f for f in scratch.flops), scratch.loss)
    assert saving(cheaper, scratch) == pytest.approx(0.4)
    worse = Curve(scratch.flops, tuple(v + 0.1 for v in scratch.loss))
    assert saving(worse, scratch) is None


def test_loss_at_equal_compute():
    c = Curve((1.0, 2.0, 3.0), (3.0, 2.0, 2.2))
    assert loss_at(c, 2.5) == 2.0 and loss_at(c, 9.0) == 2.0 and loss_at(c, 0.5) == float("inf")


def test_paired_differences():
    d = paired([2.0, 2.1, 2.3], [2.1, 2.1, 2.2])
    assert d.values == pytest.approx((-0.1, 0.0, 0.1)) and d.mean == pytest.approx(0.0)
    with pytest.raises(ValueError, match="one per seed"):
        paired([1.0], [1.0, 2.0])


def test_read_curve_and_bad_curves(tmp_path):
    lines = [
        {"kind": "train", "step": 1, "loss": 4.0},
        {"kind": "flops", "step": 10, "dense_train_flops": 5.0, "val_bpc": 3.0},
        {"kind": "flops", "step": 20, "dense_train_flops": 9.0, "val_bpc": 2.5},
        {"kind": "flops", "step": 20, "dense_train_flops": 9.0, "val_bpc": 2.5},  # the final line
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    c = read_curve(tmp_path)
    assert c.flops == (5.0, 9.0) and c.loss == (3.0, 2.5)
    (tmp_path / "metrics.jsonl").write_text(json.dumps(lines[0]) + "\n")
    with pytest.raises(ValueError, match="expected a FlopCounter run"):
        read_curve(tmp_path)
    with pytest.raises(ValueError, match="must not decrease"):
        Curve((2.0, 1.0), (1.0, 1.0))
