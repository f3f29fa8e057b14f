"""Errors the solver raises: a failed or cancelled build (exit 1), bad input and unsupported
features (exit 2), and outputs that cannot be written."""

from __future__ import annotations

from llb.errors import LLBError, NoSpaceError, is_no_space


class SolveError(LLBError):
    """A vertex failed while building: carries its name, the command and the tail of its log.

    str() is the one-line summary; `details` holds the extra lines (command, log tail) the
    CLI prints below it."""

    exit_code = 1

    def __init__(self, message: str, *, vertex: str | None = None, path: str | None = None,
                 name: str | None = None, command: str | None = None,
                 log_tail: list[str] | None = None):
        super().__init__(message, vertex=vertex, path=path)
        self.name = name
        self.command = command
        self.log_tail = list(log_tail or [])

    @property
    def details(self) -> list[str]:
        """Lines to print under the one-line summary."""
        out = []
        if self.command:
            out.append(f"command: {self.command}")
        if self.log_tail:
            out.append("last lines of output:")
            out.extend("  " + line for line in self.log_tail)
        return out


class UnsupportedError(LLBError):
    """An op or option this version of llb cannot run yet (bad input: exit 2)."""


class InputError(LLBError):
    """The build asked for something that is not there: a missing `--local` mapping or a copy
    source that does not exist (bad input: exit 2)."""


class SolveCancelledError(LLBError):
    """A vertex stopped because another vertex failed (named apart from
    concurrent.futures.CancelledError, which the scheduler also meets)."""

    exit_code = 1


class OutputSpecError(LLBError):
    """A bad `--output` spec: unknown type or option, missing dest, a destination that cannot
    be written (bad input: exit 2, found before anything is solved)."""


class ExportError(LLBError):
    """The result could not be written where the output spec says (exit 2)."""


class RootError(LLBError):
    """The llb root cannot be used: a file in its path, a read-only or special filesystem,
    no permission (bad input: exit 2, one line naming the root)."""

    @classmethod
    def of(cls, root: object, e: BaseException) -> "RootError":
        """The error for root, from the OSError (or sqlite error) that opening it raised."""
        if isinstance(e, OSError):
            why = e.strerror or str(e)
            where = e.filename if isinstance(e.filename, str) else None
            if where and where != str(root):
                why = f"{why}: {where}"
        else:
            why = str(e)
        return cls(f"cannot use {root} as llb's root ({why})", path=str(root))


def opening_error(root: object, e: BaseException) -> LLBError:
    """The one-line error for a root that could not be opened: NoSpaceError when its disk is
    full (exit 1, as a failed build), else RootError (exit 2)."""
    if is_no_space(e):
        return NoSpaceError.on("root", root)
    return RootError.of(root, e)
