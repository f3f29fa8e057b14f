"""Typed errors. Every user-facing error in llb derives from LLBError, carries the vertex
and path involved where there is one, and renders as one line; the CLI exits with
`exit_code` (2 = bad usage or input, 1 = a build that failed)."""

from __future__ import annotations

import errno


class LLBError(Exception):
    """Base of every error llb reports to a user."""

    exit_code = 2

    def __init__(self, message: str, *, vertex: str | None = None, path: str | None = None):
        super().__init__(message)
        self.message = message
        self.vertex = vertex
        self.path = path

    def __str__(self) -> str:
        return " ".join(self.message.split("\n")[0:1]) if self.message else type(self).__name__


class DefinitionError(LLBError):
    """A definition (or the bytes claiming to be one) is malformed or inconsistent."""


class BuildFileError(LLBError):
    """A build file could not be loaded or did not produce a State."""


class NoSpaceError(LLBError):
    """A write failed because a filesystem is full (or a quota is exhausted): the root's or
    an output destination's, named in the one line (`no space left on device (root /x)`).
    Not bad input: exit 1, as a failed build; nothing half-written is kept."""

    exit_code = 1

    @classmethod
    def on(cls, where: str, path: object, *, vertex: str | None = None) -> "NoSpaceError":
        """The error for a full filesystem under `path`; `where` is "root" or "destination"."""
        return cls(f"no space left on device ({where} {path})", vertex=vertex, path=str(path))


_SQLITE_FULL = 13


def is_no_space(exc: BaseException) -> bool:
    """Whether `exc` is a write refused for lack of space: an OSError with ENOSPC or EDQUOT,
    or SQLite's SQLITE_FULL ("database or disk is full"). (SQLite's I/O errors are
    ambiguous: llb.snapshot.db tells them apart by looking at the free space.)"""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF == _SQLITE_FULL
