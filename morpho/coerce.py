"""Config coercion: plain tables (TOML, CLI flags, checkpoints) into frozen dataclasses.

The bottom of the engine (it imports nothing of morpho), so that every config, wherever
it lives, is filled by the one coercer::

    cfg = from_dict(NetworkConfig, {"d_cell": 32, "level_sizes": [2, 4]}, "network.")

Unknown keys, wrong types and out-of-range values raise ``ValueError`` naming what was
expected and what came. A dataclass that needs more than field-by-field coercion (the
growth table, whose sub-tables are typed by the rules) defines a classmethod
``from_table(data, where)``, which the coercer calls in its place.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Collection, Mapping
from typing import Any


def from_dict(cls: type, data: Any, where: str) -> Any:
    """Build dataclass ``cls`` from table ``data`` whose keys are named ``{where}{key}``.

    Raises:
        ValueError: ``data`` is not a table, a key is not a field of ``cls``, a value has
            the wrong type or is refused by ``cls`` itself.
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"{where[:-1] or 'config'}: expected a table, got {type(data).__name__}")
    fields = [f.name for f in dataclasses.fields(cls)]
    reject_unknown(data, fields, where)
    hints = typing.get_type_hints(cls)
    return cls(**{k: coerce(hints[k], v, f"{where}{k}") for k, v in data.items()})


def reject_unknown(
    data: Collection[str], known: Collection[str], where: str, note: str = ""
) -> None:
    """The one unknown-key check: ``ValueError`` naming the first key of ``data`` not in
    ``known`` (``{where}{key}{note}``) and listing the known ones."""
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(
            f"unknown config key {where}{unknown[0]}{note}; "
            f"expected one of: {', '.join(known) or '(none)'}"
        )


def coerce(hint: Any, value: Any, where: str) -> Any:
    """``value`` as type ``hint`` (dataclass, tuple, dict, int, float, str, bool)."""
    if isinstance(hint, type) and hasattr(hint, "from_table"):
        return hint.from_table(value, where + ".")
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where + ".")
    origin = typing.get_origin(hint)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        inner = typing.get_args(hint)[0]
        return tuple(coerce(inner, v, where) for v in value)
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a table, got {value!r}")
        args = typing.get_args(hint)
        inner = args[1] if len(args) == 2 else Any
        return {str(k): coerce(inner, v, f"{where}.{k}") for k, v in value.items()}
    if origin in (typing.Union, types.UnionType):
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and (
        not isinstance(value, hint) or (hint is int and isinstance(value, bool))
    ):
        raise ValueError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value


def require(ok: bool, name: str, expected: str, got: Any) -> None:
    """A config's range check: ``ValueError("{name} must be {expected}; got {got!r}")``."""
    if not ok:
        raise ValueError(f"{name} must be {expected}; got {got!r}")


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``over`` laid on it, sub-tables merged key by key."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def to_plain(x: Any) -> Any:
    """Tables and lists only (tuples become lists), ``None`` values dropped (TOML has none)."""
    if isinstance(x, dict):
        return {k: to_plain(v) for k, v in x.items() if v is not None}
    if isinstance(x, (list, tuple)):
        return [to_plain(v) for v in x]
    return x
