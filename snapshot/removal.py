"""A layer that only deletes: what removing paths from a committed tree takes away, found by
looking the paths up in that tree (read-only), and the layer of those deletions written
without any copy or mount of the tree (a FileOp of rm actions on a big tree costs what it
removes, not what the tree holds)."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterable
from pathlib import Path

from llb.fsutil import set_times
from llb.snapshot.errors import PathEscapeError
from llb.snapshot.layers import Change, path_key
from llb.snapshot.upper import write_layer


class _Symlink(Exception):
    """A path's parent directories hold a symlink: its lexical path is not where it is."""


def removal_paths(tree: str, paths: Iterable[str]) -> list[str] | None:
    """The topmost entries of the tree at `tree` that removing each of `paths` in order
    takes away (recursively; a final symlink itself, never its target), sorted by
    path_key: a path that is missing, below a non-directory or below one removed before
    takes nothing. None when a path's parent directories hold a symlink (resolving it is
    the caller's work). Paths are clean and relative ("a/b"; no "..", "." or "/" parts)."""
    gone: set[str] = set()
    dirs: dict[str, bool] = {"": True}  # rel -> a real directory (False: missing, a file)

    def is_dir(rel: str) -> bool:
        known = dirs.get(rel)
        if known is not None:
            return known
        up = rel.rpartition("/")[0]
        ok = is_dir(up)
        if ok:
            try:
                mode = os.lstat(f"{tree}/{rel}").st_mode
            except (FileNotFoundError, NotADirectoryError):
                ok = False
            else:
                if stat.S_ISLNK(mode):
                    raise _Symlink(rel)
                ok = stat.S_ISDIR(mode)
        dirs[rel] = ok
        return ok

    try:
        for rel in paths:
            _check(rel)
            if rel in gone or any(p in gone for p in _ancestors(rel)):
                continue  # removed already, with what was above it
            if not is_dir(rel.rpartition("/")[0]):
                continue
            try:
                mode = os.lstat(f"{tree}/{rel}").st_mode
            except (FileNotFoundError, NotADirectoryError):
                continue
            if stat.S_ISDIR(mode):  # what was removed below it is listed as it
                below = rel + "/"
                gone = {g for g in gone if not g.startswith(below)}
            gone.add(rel)
    except _Symlink:
        return None
    return sorted(gone, key=path_key)


def _ancestors(rel: str) -> Iterable[str]:
    while "/" in rel:
        rel = rel.rpartition("/")[0]
        yield rel


def _check(rel: str) -> None:
    if not rel or "\x00" in rel or any(p in ("", ".", "..") for p in rel.split("/")):
        raise PathEscapeError(f"not a clean relative path: {rel!r}", path=rel)


def write_removal(tree: Path, dest: Path, gone: list[str], *, whiteouts: bool) -> list[Change]:
    """Create dest (absent) as the layer deleting `gone` (removal_paths of the tree at
    `tree`) and return its changes: the parent directories of the deletions with the tree's
    metadata, those that lost an entry modified now (as the kernel dates a removal),
    and overlay whiteouts when asked."""
    changes = [Change(rel, "delete") for rel in gone]
    write_layer(tree, dest, changes, whiteouts=whiteouts)
    now = time.time_ns()
    for parent in {rel.rpartition("/")[0] for rel in gone}:
        where = os.path.join(dest, parent) if parent else os.fspath(dest)
        set_times(where, now, os.lstat(where).st_atime_ns)
    return changes
