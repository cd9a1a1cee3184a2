"""A plain name → object registry with entry-point discovery and helpful errors.

Used for cell types, growth rules, energy terms, tasks and CLI command groups::

    RULES = Registry("growth rule", entry_point_group="morpho.growth_rules")
    RULES.register("mitosis", Mitosis)
    RULES.get("mitosis")           # -> Mitosis
    RULES.get("mitosys")           # ValueError: unknown growth rule 'mitosys'; expected one of: ...
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import entry_points
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects; names from an entry-point group are loaded on first lookup."""

    def __init__(self, kind: str, entry_point_group: str | None = None) -> None:
        self.kind = kind
        self.group = entry_point_group
        self._items: dict[str, T] = {}
        self._loaded = entry_point_group is None

    def register(self, name: str, obj: T) -> T:
        self._items[name] = obj
        return obj

    def _load_entry_points(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        assert self.group is not None
        for ep in entry_points(group=self.group):
            if ep.name not in self._items:
                self._items[ep.name] = ep.load()

    def get(self, name: str) -> T:
        if name not in self._items:
            self._load_entry_points()
        if name not in self._items:
            raise ValueError(
                f"unknown {self.kind} {name!r}; expected one of: {', '.join(self.names())}"
            )
        return self._items[name]

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        self._load_entry_points()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
