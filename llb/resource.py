"""Closeable: the `with` protocol of objects that hold something until close() (a store's
locks and DB, a solver, a registry client), written once."""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from typing import Self


class Closeable:
    """Use as `with X(...) as x:`; the block's end calls close()."""

    def close(self) -> None:
        """Release what the object holds (a subclass's own)."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
