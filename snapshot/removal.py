"""A layer that only deletes: what removing paths from a committed tree takes away, found by
looking the paths up in that tree (read-only), and the layer of those deletions written
without any copy or mount of the tree (a FileOp of rm actions on a big tree costs what it
removes, not what the tree holds)."""

from __future__ import annotations

import os
import stat
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from llb.fsutil import set_times
from llb.snapshot.errors import PathEscapeError
from llb.snapshot.layers import Change, path_key
from llb.snapshot.upper import write_layer


class _Symlink(Exception):
    """A path's parent directories hold a symlink: its lexical path is not where it is."""


_LIST_FROM = 16  # removals in one directory from which it is listed once, not lstat-ed each
_DIR, _LINK, _OTHER = 1, 2, 3


def removal_paths(tree: str, paths: Iterable[str]) -> list[str] | None:
    """The topmost entries of the tree at `tree` that removing each of `paths` in order
    takes away (recursively; a final symlink itself, never its target), sorted by
    path_key: a path that is missing, below a non-directory or below one removed before
    takes nothing. None when a path's parent directories hold a symlink (resolving it is
    the caller's work). Paths are clean and relative ("a/b"; no "..", "." or "/" parts)."""
    paths = list(paths)
    per_dir = Counter(rel.rpartition("/")[0] for rel in paths)
    listings: dict[str, dict[str, int]] = {}  # directory -> its entries' kinds
    gone: set[str] = set()
    hiding: set[str] = set()  # removed directories and symlinks: no path below them is left
    dirs: dict[str, bool] = {"": True}  # rel -> a real directory (False: missing, a file)

    def is_dir(rel: str) -> bool:
        known = dirs.get(rel)
        if known is not None:
            return known
        up = rel.rpartition("/")[0]
        ok = is_dir(up)
        if ok:
            k = kind(rel, up)
            if k == _LINK:
                raise _Symlink(rel)
            ok = k == _DIR
        dirs[rel] = ok
        return ok

    def kind(rel: str, parent: str) -> int | None:
        """What rel is (None: nothing), its parent being a real directory of the tree."""
        if per_dir[parent] >= _LIST_FROM:
            names = listings.get(parent)
            if names is None:
                names = listings[parent] = _listing(f"{tree}/{parent}" if parent else tree)
            return names.get(rel[len(parent) + 1:] if parent else rel)
        try:
            mode = os.lstat(f"{tree}/{rel}").st_mode
        except (FileNotFoundError, NotADirectoryError):
            return None
        return _DIR if stat.S_ISDIR(mode) else _LINK if stat.S_ISLNK(mode) else _OTHER

    try:
        for rel in paths:
            parts = rel.split("/")
            if "" in parts or "." in parts or ".." in parts or "\x00" in rel:
                raise PathEscapeError(f"not a clean relative path: {rel!r}", path=rel)
            if rel in gone or hiding and any(
                    "/".join(parts[:i]) in hiding for i in range(1, len(parts))):
                continue  # removed already, with what was above it
            parent = rel.rpartition("/")[0]
            if not is_dir(parent):
                continue
            k = kind(rel, parent)
            if k is None:
                continue
            if k == _DIR:  # what was removed below it is listed as it
                below = rel + "/"
                gone = {g for g in gone if not g.startswith(below)}
            if k != _OTHER:
                hiding.add(rel)
            gone.add(rel)
    except _Symlink:
        return None
    return sorted(gone, key=path_key)


def _listing(path: str) -> dict[str, int]:
    """Each entry of the directory at path and its kind (by d_type where the filesystem
    gives it)."""
    with os.scandir(path) as it:
        return {e.name: _DIR if e.is_dir(follow_symlinks=False) else
                _LINK if e.is_symlink() else _OTHER for e in it}


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
