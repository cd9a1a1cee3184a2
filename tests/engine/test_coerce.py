"""The config coercer (morpho/coerce.py): tables into frozen dataclasses, one unknown-key
check, the ``from_table`` hook, merging and plain tables."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from morpho.coerce import deep_merge, from_dict, reject_unknown, require, to_plain


@dataclass(frozen=True)
class Inner:
    rate: float = 0.5  # a float field: ints are widened


@dataclass(frozen=True)
class Hooked:
    n: int = 0  # filled by from_table, not field by field

    @classmethod
    def from_table(cls, data: Any, where: str) -> Hooked:
        return cls(n=len(data))


@dataclass(frozen=True)
class Outer:
    sizes: tuple[int, ...] = (1,)  # a list in TOML
    inner: Inner = field(default_factory=Inner)
    hooked: Hooked = field(default_factory=Hooked)


def test_tables_become_dataclasses_with_tuples_floats_and_the_hook() -> None:
    cfg = from_dict(Outer, {"sizes": [2, 3], "inner": {"rate": 1}, "hooked": {"a": 1}}, "")
    assert cfg == Outer(sizes=(2, 3), inner=Inner(rate=1.0), hooked=Hooked(n=1))
    assert isinstance(cfg.inner.rate, float)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"inner": {"rat": 1}}, "unknown config key inner.rat; expected one of: rate"),
        ({"sizes": 3}, "sizes: expected a list, got 3"),
        ({"sizes": [True]}, "sizes: expected int, got True"),
        ({"inner": 2}, "inner: expected a table, got int"),
    ],
)
def test_bad_tables_name_what_was_expected(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as err:
        from_dict(Outer, data, "")
    assert str(err.value) == message


def test_the_one_unknown_key_check_lists_the_choices_or_none() -> None:
    reject_unknown({"a"}, ["a", "b"], "x.")
    with pytest.raises(
        ValueError, match=r"^unknown config key x.c for y; expected one of: \(none\)$"
    ):
        reject_unknown({"c"}, [], "x.", " for y")
    with pytest.raises(ValueError, match=r"^t.n must be >= 1; got 0$"):
        require(False, "t.n", ">= 1", 0)


def test_merge_and_plain_tables() -> None:
    assert deep_merge({"a": {"b": 1, "c": 2}}, {"a": {"b": 3}}) == {"a": {"b": 3, "c": 2}}
    assert to_plain({"a": (1, 2), "b": None, "c": [{"d": None}]}) == {"a": [1, 2], "c": [{}]}
