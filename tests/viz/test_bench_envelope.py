"""The fixed-size envelope a bench plot draws: at each FLOP count, the lowest value any
fixed-size row (``envelope-*`` and ``scratch``) had reached by then."""

from __future__ import annotations

from morpho.viz.bench_plot import envelope_points

CURVES = {
    "grown": [(1.0, 3.0), (4.0, 1.0)],  # not a fixed size: never in the envelope
    "scratch": [(2.0, 2.5), (6.0, 2.0), (9.0, 2.2)],
    "envelope-0.25x": [(0.5, 2.8), (1.5, 2.4), (2.5, 2.45)],
    "envelope-2x": [(4.0, 2.6), (12.0, 1.9)],
}


def test_the_envelope_is_the_lowest_value_any_fixed_size_reached_by_then() -> None:
    env = dict(envelope_points(CURVES))
    fixed = [CURVES[n] for n in ("scratch", "envelope-0.25x", "envelope-2x")]
    assert sorted(env) == sorted({x for c in fixed for x, _ in c})
    for x, y in env.items():
        assert y == min(v for c in fixed for f, v in c if f <= x)
    ys = [env[x] for x in sorted(env)]
    assert ys == sorted(ys, reverse=True)  # never rises: more compute, no worse a best
    assert env[4.0] == 2.4 and env[12.0] == 1.9  # grown's 1.0 at 4.0 is not a fixed size


def test_a_bench_without_fixed_sizes_has_no_envelope() -> None:
    assert envelope_points({k: v for k, v in CURVES.items() if "envelope" not in k}) == []
