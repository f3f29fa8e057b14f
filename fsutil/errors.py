"""Typed errors of the filesystem toolkit (one line each, as every LLBError)."""

from __future__ import annotations

import os

from llb.errors import LLBError

PATH_MAX = 4096  # Linux: the longest path (bytes, with its NUL) a system call accepts


class FsError(LLBError):
    """A tree could not be read or written the way the toolkit needs."""

    exit_code = 1


class PathTooLongError(FsError):
    """A path in a tree is longer than a system call accepts (PATH_MAX): such an entry can be
    walked and removed by directory descriptors, never named by its full path."""

    def __init__(self, path: str):
        size = len(os.fsencode(path))
        shown = f"{path[:60]}...{path[-60:]}" if len(path) > 130 else path
        super().__init__(f"path too long ({size} bytes; the system's limit, PATH_MAX, is "
                         f"{PATH_MAX}): {shown}", path=path)


def check_length(path: str) -> str:
    """path itself, or PathTooLongError when a system call would refuse it."""
    if len(path) >= PATH_MAX // 4 and len(os.fsencode(path)) >= PATH_MAX:
        raise PathTooLongError(path)
    return path
