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

A k-gram is stored under a dense key, ``rank(its first k − 1 characters) · V + last``, where
the rank is the index of the (k − 1)-gram among the distinct (k − 1)-grams: keys stay below
``(number of distinct grams) · V`` at any order, so the order is not capped by an integer
code's width, and the k-grams of one context are contiguous.

The bench's row (:func:`ngram_row`) picks the order and ``D`` on a *tuning* split — the last
10% of the training text, counted without it — never on the evaluation windows. The order
search adds one order at a time and stops at the first order whose best tuning bpc is no
better than the one below it (the chosen order is then one below the last tried), or when
the counts would pass :data:`MAX_BYTES` of memory (``stopped`` says which). It then counts
the whole training split and scores exactly the windows the trainer evaluates
(:meth:`LangTask.eval_batches`), with the same context limit: at window position ``t`` the
networks see ``t + 1`` characters, so the n-gram uses at most the last ``t + 1``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import Tensor

DISCOUNTS = (0.5, 0.7, 0.8, 0.9, 1.0)
TUNE_FRACTION = 0.1  # of the training split, held out to choose the order and discount
TUNE_WINDOWS = 4096  # at most this many windows of the tuning split are scored
MAX_BYTES = 2**31  # memory guard: the order search stops before the counts pass this
MAX_ORDER = 64  # a sanity ceiling of the search; text runs out or validation stops first


@dataclass(frozen=True)
class _Level:
    """The k-grams of one order: dense keys, raw and continuation counts, and per context
    (a (k-1)-gram, by its rank in the level below) their totals and distinct followers."""

    keys: np.ndarray  # (G,) sorted: rank(first k-1 characters) · V + last character
    raw: np.ndarray  # (G,) c(h w)
    cont: np.ndarray  # (G,) N1+(· h w): distinct characters seen before the k-gram
    raw_total: np.ndarray  # (H,) Σ_w c(h w), H = distinct (k-1)-grams
    raw_types: np.ndarray  # (H,) N1+(h ·) over raw counts
    cont_total: np.ndarray  # (H,) Σ_w N1+(· h w)
    cont_types: np.ndarray  # (H,) distinct w with N1+(· h w) > 0

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in vars(self).values())


def _level(keys: np.ndarray, raw: np.ndarray, cont: np.ndarray, vocab: int, n_ctx: int) -> _Level:
    ctx = keys // vocab

    def per_ctx(weights: np.ndarray) -> np.ndarray:
        return np.bincount(ctx, weights=weights, minlength=n_ctx).astype(np.int64)

    return _Level(keys, raw, cont, per_ctx(raw), per_ctx(raw > 0), per_ctx(cont), per_ctx(cont > 0))


def count_levels(ids: np.ndarray, vocab: int) -> Iterator[_Level]:
    """The levels of ``ids`` for order 1, 2, … (until the text is shorter than the order)."""
    n = len(ids)
    prev, n_prev = np.zeros(n + 1, dtype=np.int64), 1  # the empty gram, at every start
    for k in range(1, n + 1):
        m = n - k + 1  # k-grams of the text, starting at 0 … m - 1
        keys, rank, raw = np.unique(
            prev[:m] * vocab + ids[k - 1 :], return_inverse=True, return_counts=True
        )
        left = np.unique(rank[1:] * vocab + ids[: m - 1])  # distinct (k-gram, left neighbour)
        cont = np.bincount(left // vocab, minlength=len(keys)).astype(np.int64)
        yield _level(keys, raw.astype(np.int64), cont, vocab, n_prev)
        prev, n_prev = rank.astype(np.int64), len(keys)


def _find(keys: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Index of each query in sorted ``keys``; -1 where absent (or the query is negative)."""
    if not len(keys):
        return np.full(query.shape, -1, dtype=np.int64)
    at = np.searchsorted(keys, query).clip(max=len(keys) - 1)
    return np.where((keys[at] == query) & (query >= 0), at, -1)


def _take(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``values[index]`` as float64, 0 where ``index`` is -1."""
    safe = np.where(index >= 0, index, 0)
    return np.where(index >= 0, values[safe], 0).astype(np.float64) if len(values) else 0 * safe


@dataclass(frozen=True)
class _Ranks:
    """Per level k: the rank of each position's context and of its (context, target) gram."""

    ctx: list[np.ndarray]  # k-1: (B, T - s_k) ranks of the (k-1)-character contexts, -1 unseen
    gram: list[np.ndarray]  # k-1: (B, T - s_k) ranks of the k-grams, -1 unseen
    starts: list[int]  # k-1: s_k, the first window position with k - 1 characters of context


class KneserNey:
    """Interpolated Kneser–Ney of one order and one discount; see the module docstring."""

    def __init__(self, levels: list[_Level], vocab: int, discount: float):
        self.levels, self.vocab, self.discount = levels, vocab, discount
        self.order = len(levels)

    def truncated(self, order: int, discount: float | None = None) -> KneserNey:
        """The model of a lower ``order`` (same counts), optionally with another discount."""
        if not 1 <= order <= self.order:
            raise ValueError(f"order must be in [1, {self.order}]; got {order}")
        d = self.discount if discount is None else discount
        return KneserNey(self.levels[:order], self.vocab, d)

    @staticmethod
    def fit(ids: np.ndarray | Tensor, vocab_size: int, order: int, discount: float) -> KneserNey:
        """Count ``ids`` (a 1-D sequence of token ids) up to ``order``.

        Raises:
            ValueError: ``order`` < 1, ``discount`` outside (0, 1], or ids outside the vocab.
        """
        ids = _checked(ids, vocab_size)
        if order < 1 or not 0 < discount <= 1:
            raise ValueError(f"need order >= 1 and 0 < discount <= 1; got {order}, {discount}")
        levels = count_levels(ids, vocab_size)
        return KneserNey(
            [lv for _, lv in zip(range(order), levels, strict=False)], vocab_size, discount
        )

    def prob(self, history: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """``P(target | history)`` per row: history (R, h) ids (oldest first; the last
        ``order - 1`` are used), targets (R,); returns (R,) float64."""
        targets = np.asarray(targets, dtype=np.int64)
        history = np.asarray(history, dtype=np.int64).reshape(len(targets), -1)
        history = history[:, max(0, history.shape[1] - (self.order - 1)) :]
        if not history.shape[1]:  # no context: the unigram level alone
            return self.truncated(1).window_probs(targets[:, None], targets[:, None])[:, 0]
        y = np.concatenate([history[:, 1:], targets[:, None]], axis=1)
        return self.window_probs(history, y)[:, -1]

    def ranks(self, x: np.ndarray, y: np.ndarray) -> _Ranks:
        """The level-by-level ranks of the windows ``x`` (B, T) with targets ``y`` (B, T)."""
        B, T = x.shape
        prev = np.zeros((B, T + 1), dtype=np.int64)  # the empty context, before each start
        out = _Ranks([], [], [])
        for k, lv in enumerate(self.levels, start=1):
            s = max(0, k - 2)  # positions t >= s see k - 1 characters: x[t + 2 - k : t + 1]
            if s >= T:
                break
            j0 = s + 2 - k  # the context's first character at position s
            ctx = prev[:, j0 : j0 + T - s]
            out.ctx.append(ctx)
            out.gram.append(_find(lv.keys, np.where(ctx >= 0, ctx * self.vocab + y[:, s:], -1)))
            out.starts.append(s)
            m = T - k + 1  # k-grams of x, starting at 0 … m - 1: the next level's contexts
            prev = _find(
                lv.keys, np.where(prev[:, :m] >= 0, prev[:, :m] * self.vocab + x[:, k - 1 :], -1)
            )
        return out

    def probs_from_ranks(self, r: _Ranks, T: int) -> np.ndarray:
        """(B, T) probabilities of the targets, each position at the highest order its
        context allows (raw counts there, continuation counts below)."""
        B = r.ctx[0].shape[0]
        p = np.full((B, T), 1.0 / self.vocab)
        top = np.minimum(self.order, np.arange(T) + 2)  # (T,) order used at position t
        for k, (lv, ctx, gram, s) in enumerate(
            zip(self.levels, r.ctx, r.gram, r.starts, strict=False), 1
        ):
            raw = (top[s:] == k)[None, :]
            total = np.where(raw, _take(lv.raw_total, ctx), _take(lv.cont_total, ctx))
            types = np.where(raw, _take(lv.raw_types, ctx), _take(lv.cont_types, ctx))
            count = np.where(raw, _take(lv.raw, gram), _take(lv.cont, gram))
            lower = p[:, s:]
            mixed = (
                np.maximum(count - self.discount, 0) + self.discount * types * lower
            ) / np.where(total > 0, total, 1.0)
            p[:, s:] = np.where(total > 0, mixed, lower)
        return p

    def window_probs(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """(B, T) ``P(y[:, t] | x[:, :t + 1])``, within the order (the networks' context limit)."""
        x, y = np.asarray(x, dtype=np.int64), np.asarray(y, dtype=np.int64)
        return self.probs_from_ranks(self.ranks(x, y), x.shape[1])

    def window_bits(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """(B, T) bits of ``y[:, t]`` given ``x[:, :t + 1]`` (the networks' context limit)."""
        return -np.log2(self.window_probs(x, y))

    def entries(self) -> int:
        """Distinct n-grams stored (every order)."""
        return sum(len(lv.keys) for lv in self.levels)

    @property
    def nbytes(self) -> int:
        return sum(lv.nbytes for lv in self.levels)


def _checked(ids: np.ndarray | Tensor, vocab_size: int) -> np.ndarray:
    ids = np.asarray(ids, dtype=np.int64)
    if len(ids) and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError(f"token ids must lie in [0, {vocab_size}); got {ids.min()}..{ids.max()}")
    return ids


def windows_bpc(lm: KneserNey, batches: list[tuple[Any, Any]]) -> float:
    """Mean bits per character over (x, y) window batches, every position weighted alike."""
    bits = [lm.window_bits(np.asarray(x), np.asarray(y)) for x, y in batches]
    return float(np.mean(np.concatenate([b.ravel() for b in bits])))


def _split_windows(ids: np.ndarray, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Consecutive non-overlapping (x, y) windows of ``ids``."""
    n = (len(ids) - 1) // seq_len
    if n < 1:
        raise ValueError(f"need at least seq_len + 1 = {seq_len + 1} ids to score; got {len(ids)}")
    return ids[: n * seq_len].reshape(n, seq_len), ids[1 : n * seq_len + 1].reshape(n, seq_len)


def tune(
    train: np.ndarray,
    vocab_size: int,
    seq_len: int,
    discounts: tuple[float, ...] = DISCOUNTS,
    max_bytes: int = MAX_BYTES,
    max_order: int = MAX_ORDER,
) -> dict[str, Any]:
    """Order and discount with the lowest bpc on the last :data:`TUNE_FRACTION` of ``train``
    (counted on the rest), scored in up to :data:`TUNE_WINDOWS` consecutive ``seq_len``
    windows from its start. Orders are tried from 1 up until the best bpc of an order is no
    better than the order below (``stopped = "validation"``), the counts would pass
    ``max_bytes`` (``"memory guard"``), or ``max_order`` is tried (``"max_order"``).

    Returns:
        ``order``, ``discount``, ``tune_bpc``, ``stopped``, ``orders_tried`` and every score.
    """
    cut = int(len(train) * (1 - TUNE_FRACTION))
    x, y = _split_windows(np.asarray(train[cut : cut + TUNE_WINDOWS * seq_len + 1]), seq_len)
    scores: dict[tuple[int, float], float] = {}
    levels: list[_Level] = []
    stopped, best_below = "max_order", np.inf
    for lv in count_levels(_checked(train[:cut], vocab_size), vocab_size):
        if sum(v.nbytes for v in levels) + lv.nbytes > max_bytes:
            stopped = "memory guard"
            break
        levels.append(lv)
        lm = KneserNey(levels, vocab_size, discounts[0])
        r, order = lm.ranks(x, y), len(levels)
        for d in discounts:
            scores[(order, d)] = float(
                -np.log2(lm.truncated(order, d).probs_from_ranks(r, seq_len)).mean()
            )
        best = min(scores[(order, d)] for d in discounts)
        if best >= best_below:
            stopped = "validation"
            break
        best_below = best
        if order >= max_order:
            break
    else:
        stopped = "text length"
    order, discount = min(scores, key=scores.__getitem__)
    return {
        "order": order,
        "discount": discount,
        "tune_bpc": scores[(order, discount)],
        "stopped": stopped,
        "orders_tried": max(o for o, _ in scores),
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
