"""Typed errors of the file backend. Actions raise them with the in-root path; `file.run`
adds the vertex (digest and progress name) before they reach the user."""

from __future__ import annotations

from llb.solver.errors import InputError, SolveError


class FileActionError(SolveError):
    """A file action failed on the tree it ran on (the build failed: exit 1)."""


class CopySourceNotFoundError(InputError):
    """A copy source (or every match of its wildcard) does not exist (bad input: exit 2)."""


class OwnerError(InputError):
    """An owner option names a user or group the state's /etc/passwd or /etc/group lacks,
    or is malformed (bad input: exit 2)."""
