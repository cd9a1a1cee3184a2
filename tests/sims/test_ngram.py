"""The count n-gram row: interpolated Kneser–Ney normalises, matches a hand count, and is
tuned on the training split only, scored on the trainer's own eval windows."""

from __future__ import annotations

import math

import numpy as np
import pytest

from morpho.sims.lang import LangTask
from morpho.sims.ngram import KneserNey, ngram_row, tune, windows_bpc


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_every_distribution_sums_to_one_over_the_vocabulary(order: int) -> None:
    rng = np.random.default_rng(order)
    ids = rng.integers(0, 7, 400)
    ids[::3] = 2  # some structure: seen and unseen contexts of every length
    lm = KneserNey.fit(ids, vocab_size=7, order=order, discount=0.75)
    for history in ([], [1], [2, 3], [2, 2, 2], [6, 6, 6, 6], [0, 1, 2, 3, 4, 5]):
        rows = np.array([history] * 7, dtype=np.int64).reshape(7, len(history))
        p = lm.prob(rows, np.arange(7))
        assert p.min() > 0 and p.sum() == pytest.approx(1.0, abs=1e-12)


def test_a_tiny_corpus_gives_the_hand_counted_probabilities() -> None:
    # "ababa" over {a, b, c}, D = 1/2. Continuation counts: N1+(·a) = N1+(·b) = 1, none
    # for c, so P1(a) = P1(b) = (1/2 + 1/2 · 2 · 1/3) / 2 = 5/12, P1(c) = 1/6.
    # After "a": c(ab) = 2, one type: P(b|a) = (2 - 1/2 + 1/2 · 5/12) / 2 = 41/48,
    # P(a|a) = (1/2 · 5/12) / 2 = 5/48, P(c|a) = (1/2 · 1/6) / 2 = 1/24.
    lm = KneserNey.fit(np.array([0, 1, 0, 1, 0]), vocab_size=3, order=2, discount=0.5)
    after_a = lm.prob(np.zeros((3, 1), dtype=np.int64), np.arange(3))
    assert after_a.tolist() == pytest.approx([5 / 48, 41 / 48, 1 / 24])
    never_seen = lm.prob(np.full((3, 1), 2), np.arange(3))  # context c: back off to P1
    assert never_seen.tolist() == pytest.approx([5 / 12, 5 / 12, 1 / 6])
    bits = windows_bpc(lm, [(np.array([[0, 1]]), np.array([[1, 0]]))])
    assert bits == pytest.approx(-math.log2(41 / 48))  # P(b|a) = P(a|b) by symmetry


def test_window_positions_see_no_more_context_than_the_networks() -> None:
    ids = np.array([0, 1, 2] * 50)
    lm = KneserNey.fit(ids, vocab_size=3, order=4, discount=0.5)
    x, y = np.array([[0, 1, 2, 0]]), np.array([[1, 2, 0, 1]])
    bits = lm.window_bits(x, y)
    # position 0 sees one character: a bigram, as a network at the window's start
    bigram = -np.log2(lm.truncated(2).prob(x[:, :1], y[:, 0]))
    assert bits[0, 0] == pytest.approx(bigram[0])
    assert bits[0, 3] == pytest.approx(-np.log2(lm.prob(x[:, 1:4], y[:, 3]))[0])


def test_bad_input_is_refused_with_what_was_expected() -> None:
    with pytest.raises(ValueError, match="need order >= 1 and 0 < discount <= 1"):
        KneserNey.fit(np.array([0, 1]), vocab_size=2, order=2, discount=0.0)
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 2\)"):
        KneserNey.fit(np.array([0, 5]), vocab_size=2, order=2, discount=0.5)


def test_the_bench_row_is_tuned_on_training_text_and_beats_a_bigram() -> None:
    task = LangTask(corpus="pydoc")
    train = task.splits["train"].numpy()[:60_000]
    chosen = tune(train, task.vocab_size, seq_len=32, discounts=(0.5, 0.9))
    assert {"1/0.5", "2/0.9", "4/0.5"} <= set(chosen["sweep"])
    assert chosen["tune_bpc"] == pytest.approx(min(chosen["sweep"].values()), abs=1e-4)
    task.splits["train"] = task.splits["train"][:60_000]
    row = ngram_row(task, seq_len=32, n_batches=2, batch_size=4)
    assert 1.0 < row["best_val_bpc"] < chosen["sweep"]["2/0.9"]
    assert row["order"] == chosen["order"] and row["dense_train_flops"] == 0.0


def _markov_text(order: int, vocab: int, n: int, seed: int) -> np.ndarray:
    """A text drawn from a random order-``order`` Markov chain: each context allows two
    next characters, so the last ``order`` characters say much more than fewer do."""
    rng = np.random.default_rng(seed)
    table = rng.integers(0, vocab, (vocab**order, 2))
    ids = list(rng.integers(0, vocab, order))
    for _ in range(n - order):
        ctx = 0
        for c in ids[-order:]:
            ctx = ctx * vocab + int(c)
        ids.append(int(table[ctx, rng.integers(0, 2)]))
    return np.array(ids, dtype=np.int64)


@pytest.mark.parametrize("order", [3, 5])
def test_the_order_search_reaches_the_order_of_a_markov_source_and_stops_below_its_ceiling(
    order: int,
) -> None:
    ids = _markov_text(order, vocab=4, n=80_000, seed=order)
    chosen = tune(ids, vocab_size=4, seq_len=32, discounts=(0.5, 0.9))
    assert chosen["order"] >= order
    assert chosen["stopped"] == "validation" and chosen["order"] < chosen["orders_tried"]


def test_the_memory_guard_stops_the_search_and_says_so() -> None:
    ids = _markov_text(5, vocab=4, n=20_000, seed=0)
    free = tune(ids, vocab_size=4, seq_len=32, discounts=(0.9,))
    guard = sum(lv.nbytes for lv in KneserNey.fit(ids[:18_000], 4, 3, 0.9).levels)
    capped = tune(ids, vocab_size=4, seq_len=32, discounts=(0.9,), max_bytes=guard)
    assert free["order"] > 3 and capped["stopped"] == "memory guard"
    assert capped["order"] == capped["orders_tried"] == 3


def test_orders_past_an_int64_code_of_the_vocabulary_still_normalise() -> None:
    # 103 ** 11 overflows int64: the dense keys (rank · V + last) do not
    task = LangTask(corpus="pydoc")
    lm = KneserNey.fit(task.splits["train"].numpy()[:20_000], task.vocab_size, 12, 0.8)
    history = np.tile(task.splits["train"].numpy()[100:111], (task.vocab_size, 1))
    p = lm.prob(history, np.arange(task.vocab_size))
    assert lm.order == 12 and p.sum() == pytest.approx(1.0, abs=1e-12)
