"""Typed errors. Every user-facing error in llb derives from LLBError, carries the vertex
and path involved where there is one, and renders as one line; the CLI exits with
`exit_code` (2 = bad usage or input, 1 = a build that failed)."""

from __future__ import annotations


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
