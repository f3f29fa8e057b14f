"""A registry of implementations by name, each a module imported when its name is first
used: the op handlers by op kind, the sources by scheme and the exporters by output type.
This is the start-up boundary they share (a cached solve imports none of their modules)."""

from __future__ import annotations

import importlib

from llb.records import Generic

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from typing import TypeVar

    T = TypeVar("T")
else:
    T = object


class Registry(Generic[T]):
    """Names -> the dotted modules implementing protocol T; `get` imports a module once."""

    def __init__(self, entries: dict[str, str]):
        self._entries = entries
        self._loaded: dict[str, T] = {}

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        return sorted(self._entries)

    def get(self, name: str) -> T | None:
        """The implementation registered as `name` (None: none is)."""
        impl = self._loaded.get(name)
        if impl is None:
            module = self._entries.get(name)
            if module is None:
                return None
            impl = self._loaded[name] = importlib.import_module(module)  # type: ignore[assignment]
        return impl

    def override(self, name: str, impl: T) -> None:
        """Use `impl` for `name` (tests stand in fakes; the next override replaces it)."""
        self._loaded[name] = impl

    def forget(self, name: str) -> None:
        """Drop an override or a loaded module (the module is imported again on next use)."""
        self._loaded.pop(name, None)
