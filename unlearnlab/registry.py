"""A named registry: the one mechanism behind the lab's datasets, architectures and metrics
(and the methods' registry), so that each refuses a taken name, names every entry's origin and
answers an unknown name with the choices, the same way."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

from .errors import ConfigError, UnlearnlabError

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> entry, with where each entry was registered (``origin``, e.g.
    ``package.module:Class``). ``kind`` names the entries in messages ("dataset"); a lookup of
    an unknown name raises ``error``."""

    def __init__(self, kind: str, error: type[UnlearnlabError] = ConfigError):
        self.kind, self.error = kind, error
        self._entries: dict[str, tuple[T, str]] = {}

    def add(self, name: str, entry: T, origin: str, replace: bool = False) -> T:
        """Register ``entry`` under ``name``; a name taken by another origin is an error
        unless ``replace`` (a notebook cell run again registers from the same origin)."""
        if not isinstance(name, str) or not name:
            raise ConfigError(f"a {self.kind} needs a non-empty name, got {name!r}")
        taken = self._entries.get(name)
        if taken is not None and taken[1] != origin and not replace:
            raise ConfigError(f"{self.kind} '{name}' is already registered by {taken[1]}; "
                              f"{origin} cannot take its name: pick another name or pass "
                              "replace=True")
        self._entries[name] = (entry, origin)
        return entry

    def get(self, name: str) -> T:
        if not isinstance(name, str) or name not in self._entries:
            raise self.error(f"unknown {self.kind} '{name}': choose one of "
                             f"{', '.join(self._entries)}, or register your own "
                             "(docs/extending.md)")
        return self._entries[name][0]

    def origin(self, name: str) -> str:
        self.get(name)
        return self._entries[name][1]

    def remove(self, name: str) -> None:
        self._entries.pop(name, None)

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)
