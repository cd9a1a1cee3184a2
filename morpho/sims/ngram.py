"""A count n-gram baseline: interpolated Kneser–Ney over characters, scored like the networks.

    lm = KneserNey.fit(train_ids, vocab_size=103, order=5, discount=0.75)
    p = lm.prob(history, targets)            # P(target | history) for each row
    row = ngram_row(task, seq_len=64, n_batches=8, batch_size=16)   # the bench's n-gram row

Interpolated Kneser–Ney (Kneser & Ney 1995; Chen & Goodman 1998, eq. 16): with ``D`` the
absolute discount, ``c`` raw counts at the highest order and continuation counts
``N1+(· h w)`` (distinct left neighbours) at every lower order,

    P(w | h) = max(c(h w) − D, 0) / c(h) + D · N1+(h ·) / c(h) · P(w | h⁻)

where ``h⁻`` drops the oldest character; a context never seen backs off to ``P(w | h⁻)``
alone, and the lowest level interpolates with the uniform ``1 / V``. Every distribution sums
to 1 over the vocabulary (a test checks it).

The bench's row (:func:`ngram_row`) picks the order (2–6) and ``D`` on a *tuning* split —
the last 10% of the training text, counted without it — never on the evaluation windows;
then counts the whole training split and scores exactly the windows the trainer evaluates
(:meth:`LangTask.eval_batches`), with the same context limit: at window position ``t`` the
networks see ``t + 1`` characters, so the n-gram uses at most the last ``t + 1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import Tensor

ORDERS = (2, 3, 4, 5, 6)
DISCOUNTS = (0.5, 0.7, 0.8, 0.9, 1.0)
TUNE_FRACTION = 0.1  # of the training split, held out to choose the order and discount
TUNE_WINDOWS = 4096  # at most this many windows of the tuning split are scored


@dataclass(frozen=True)
class _Level:
    """Counts of the k-grams of one order: sorted codes of ``h w`` and of ``h``."""

    grams: np.ndarray  # (G,) sorted codes of the k-grams
    counts: np.ndarray  # (G,) their counts (raw or continuation)
    contexts: np.ndarray  # (H,) sorted codes of the (k-1)-gram contexts
    totals: np.ndarray  # (H,) Σ_w counts(h w)
    types: np.ndarray  # (H,) N1+(h ·): distinct w seen after h


def _codes(ids: np.ndarray, k: int, vocab: int) -> np.ndarray:
    """(len - k + 1,) int64 code of every k-gram of ``ids`` (base ``vocab``)."""
    n = len(ids) - k + 1
    code = np.zeros(max(n, 0), dtype=np.int64)
    for j in range(k):
        code = code * vocab + ids[j : j + n]
    return code


def _level(gram_codes: np.ndarray, counts: np.ndarray, vocab: int) -> _Level:
    ctx, first = np.unique(gram_codes // vocab, return_index=True)
    bounds = np.append(first, len(gram_codes))
    totals = np.add.reduceat(counts, first) if len(first) else counts[:0]
    return _Level(gram_codes, counts, ctx, totals, np.diff(bounds))


def _lookup(keys: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
    """``values[keys == q]`` for each query, 0 where the key is absent."""
    if not len(keys):
        return np.zeros(len(query), dtype=np.float64)
    at = np.searchsorted(keys, query).clip(max=len(keys) - 1)
    return np.where(keys[at] == query, values[at], 0).astype(np.float64)


class KneserNey:
    """Interpolated Kneser–Ney of one order and one discount; see the module docstring."""

    def __init__(self, raw: list[_Level], cont: list[_Level], vocab: int, discount: float):
        self.raw, self.cont = raw, cont  # index k-1: the k-grams (cont: below the top order)
        self.vocab, self.discount = vocab, discount
        self.order = len(raw)

    def truncated(self, order: int, discount: float | None = None) -> KneserNey:
        """The model of a lower ``order`` (same counts), optionally with another discount."""
        if not 1 <= order <= self.order:
            raise ValueError(f"order must be in [1, {self.order}]; got {order}")
        d = self.discount if discount is None else discount
        return KneserNey(self.raw[:order], self.cont[: order - 1], self.vocab, d)

    @staticmethod
    def fit(ids: np.ndarray | Tensor, vocab_size: int, order: int, discount: float) -> KneserNey:
        """Count ``ids`` (a 1-D sequence of token ids) up to ``order``.

        Raises:
            ValueError: ``order`` < 1, ``discount`` outside (0, 1], or ids outside the vocab.
        """
        ids = np.asarray(ids, dtype=np.int64)
        if order < 1 or not 0 < discount <= 1:
            raise ValueError(f"need order >= 1 and 0 < discount <= 1; got {order}, {discount}")
        if len(ids) and (ids.min() < 0 or ids.max() >= vocab_size):
            raise ValueError(
                f"token ids must lie in [0, {vocab_size}); got {ids.min()}..{ids.max()}"
            )
        if vocab_size ** (order + 1) >= 2**63:
            raise ValueError(f"vocab_size**(order + 1) must fit int64; got {vocab_size}, {order}")
        raw, cont = [], []
        for k in range(1, order + 1):
            grams, counts = np.unique(_codes(ids, k, vocab_size), return_counts=True)
            raw.append(_level(grams, counts.astype(np.int64), vocab_size))
            if k < order:  # continuation counts: distinct characters seen before each k-gram
                left = np.unique(_codes(ids, k + 1, vocab_size)) % vocab_size**k
                cgrams, ccounts = np.unique(left, return_counts=True)
                cont.append(_level(cgrams, ccounts.astype(np.int64), vocab_size))
        return KneserNey(raw, cont, vocab_size, discount)

    def prob(self, history: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """``P(target | history)`` per row: history (R, h) ids (oldest first; the last
        ``order - 1`` are used), targets (R,); returns (R,) float64."""
        history = np.asarray(history, dtype=np.int64).reshape(len(targets), -1)
        targets = np.asarray(targets, dtype=np.int64)
        top = min(self.order, history.shape[1] + 1)
        p = np.full(len(targets), 1.0 / self.vocab)
        for k in range(1, top + 1):  # order k: context of the last k - 1 characters
            level = self.raw[k - 1] if k == top else self.cont[k - 1]
            ctx = np.zeros(len(targets), dtype=np.int64)
            for j in range(history.shape[1] - (k - 1), history.shape[1]):
                ctx = ctx * self.vocab + history[:, j]
            p = self._interpolate(level, ctx, ctx * self.vocab + targets, p)
        return p

    def _interpolate(self, level: _Level, ctx: np.ndarray, gram: np.ndarray, lower: np.ndarray):
        total = _lookup(level.contexts, level.totals, ctx)
        types = _lookup(level.contexts, level.types, ctx)
        count = _lookup(level.grams, level.counts, gram)
        seen = total > 0
        denom = np.where(seen, total, 1.0)
        mixed = (np.maximum(count - self.discount, 0) + self.discount * types * lower) / denom
        return np.where(seen, mixed, lower)

    def window_bits(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """(B, T) bits of ``y[:, t]`` given ``x[:, :t + 1]`` (the networks' context limit)."""
        x, y = np.asarray(x, dtype=np.int64), np.asarray(y, dtype=np.int64)
        bits = np.zeros(y.shape)
        for t in range(y.shape[1]):
            start = max(0, t + 1 - (self.order - 1))
            bits[:, t] = -np.log2(self.prob(x[:, start : t + 1], y[:, t]))
        return bits

    def entries(self) -> int:
        """Distinct n-grams stored (raw and continuation, every order)."""
        return sum(len(lv.grams) for lv in self.raw + self.cont)


def windows_bpc(lm: KneserNey, batches: list[tuple[Any, Any]]) -> float:
    """Mean bits per character over (x, y) window batches, every position weighted alike."""
    bits = [lm.window_bits(np.asarray(x), np.asarray(y)) for x, y in batches]
    return float(np.mean(np.concatenate([b.ravel() for b in bits])))


def _split_windows(ids: np.ndarray, seq_len: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Consecutive non-overlapping (x, y) windows of ``ids``, as one batch."""
    n = (len(ids) - 1) // seq_len
    if n < 1:
        raise ValueError(f"need at least seq_len + 1 = {seq_len + 1} ids to score; got {len(ids)}")
    x = ids[: n * seq_len].reshape(n, seq_len)
    y = ids[1 : n * seq_len + 1].reshape(n, seq_len)
    return [(x, y)]


def tune(
    train: np.ndarray, vocab_size: int, seq_len: int, orders=ORDERS, discounts=DISCOUNTS
) -> dict[str, Any]:
    """Order and discount with the lowest bpc on the last :data:`TUNE_FRACTION` of ``train``
    (counted on the rest), scored in up to :data:`TUNE_WINDOWS` consecutive ``seq_len``
    windows from its start; returns them with every score."""
    cut = int(len(train) * (1 - TUNE_FRACTION))
    windows = _split_windows(train[cut : cut + TUNE_WINDOWS * seq_len + 1], seq_len)
    full = KneserNey.fit(train[:cut], vocab_size, max(orders), discounts[0])
    scores = {}
    for order in orders:
        for d in discounts:
            scores[(order, d)] = windows_bpc(full.truncated(order, d), windows)
    order, discount = min(scores, key=scores.__getitem__)
    return {
        "order": order,
        "discount": discount,
        "tune_bpc": scores[(order, discount)],
        "sweep": {f"{o}/{d}": round(s, 4) for (o, d), s in scores.items()},
    }


def ngram_row(task: Any, seq_len: int, n_batches: int, batch_size: int) -> dict[str, Any]:
    """The bench's ``ngram`` row: tuned on the training split, scored on the eval windows."""
    train = task.splits["train"].numpy()
    chosen = tune(train, task.vocab_size, seq_len)
    lm = KneserNey.fit(train, task.vocab_size, chosen["order"], chosen["discount"])
    bpc = windows_bpc(lm, task.eval_batches(n_batches, batch_size, seq_len))
    return {
        "name": "ngram",
        "params": None,
        "dense_train_flops": 0.0,
        "gated_train_flops": 0.0,
        "flops_per_token": 0.0,
        "best_val_bpc": bpc,
        "final_val_bpc": bpc,
        "tokens_per_s": None,
        "gate_mean": None,
        "cells": None,
        "events": 0,
        "counts": lm.entries(),
        **chosen,
    }
