"""Continual-learning metrics against matrices computed by hand (GEM / RWalk definitions)."""

from __future__ import annotations

import pytest

from morpho.sims.cl_metrics import (
    average_accuracy,
    backward_transfer,
    cl_summary,
    forgetting,
    forward_transfer,
)

# R[i, j]: accuracy on task j after training tasks 0..i; b: the untrained network
R = [[90.0, 10.0, 20.0], [92.0, 95.0, 30.0], [60.0, 80.0, 85.0]]
B = [50.0, 12.0, 25.0]


def test_average_accuracy_is_the_mean_of_the_last_row() -> None:
    assert average_accuracy(R) == pytest.approx((60 + 80 + 85) / 3)


def test_bwt_compares_the_last_row_with_the_diagonal() -> None:
    assert backward_transfer(R) == pytest.approx(((60 - 90) + (80 - 95)) / 2)


def test_fwt_compares_the_score_before_training_with_the_untrained_network() -> None:
    assert forward_transfer(R, B) == pytest.approx(((10 - 12) + (30 - 25)) / 2)


def test_forgetting_starts_from_the_best_score_after_learning_the_task() -> None:
    # task 0 peaked at 92 after task 1 (not 90); task 1 at 95
    assert forgetting(R) == pytest.approx(((92 - 60) + (95 - 80)) / 2)


def test_forgetting_ignores_scores_from_before_a_task_was_learned() -> None:
    r = [
        [90.0, 99.0, 0.0],  # 99 on task 1 before learning it must not count
        [80.0, 70.0, 0.0],
        [80.0, 60.0, 90.0],
    ]
    assert forgetting(r) == pytest.approx(((90 - 80) + (70 - 60)) / 2)


def test_lower_is_better_flips_the_sign_so_forgetting_stays_positive() -> None:
    bpc = [[2.0, 5.0], [2.5, 1.8]]
    s = cl_summary(bpc, [6.0, 6.0], higher_is_better=False)
    assert s["avg_accuracy"] == pytest.approx(2.15)
    assert s["bwt"] == pytest.approx(-0.5)
    assert s["forgetting"] == pytest.approx(0.5)
    assert s["fwt"] == pytest.approx(1.0)


def test_a_single_task_has_no_transfer_and_bad_shapes_are_refused() -> None:
    assert cl_summary([[70.0]], [10.0]) == {
        "avg_accuracy": 70.0,
        "bwt": 0.0,
        "fwt": 0.0,
        "forgetting": 0.0,
    }
    with pytest.raises(ValueError, match="square"):
        average_accuracy([[1.0, 2.0]])
    with pytest.raises(ValueError, match="baseline"):
        forward_transfer(R, [1.0])
