"""Include/exclude filters with gitignore-style patterns (pathspec), and the filtered walk
that local sources and copy checksums share, so a key covers exactly what is read."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Iterable


_WILDCARD = frozenset("*?[")


def has_wildcard(path: str) -> bool:
    """Whether a copy source path has glob characters."""
    return any(c in _WILDCARD for c in path)


class PathFilter:
    """Which paths (relative, "/"-separated) of a tree an include/exclude pair selects.

    No include patterns selects everything; a directory matched by an exclude pattern is
    pruned with its whole subtree (as in gitignore, a child cannot be re-included)."""

    def __init__(self, include: Iterable[str] = (), exclude: Iterable[str] = ()):
        include, exclude = list(include), list(exclude)
        self._inc = _compile(include) if include else None
        self._exc = _compile(exclude) if exclude else None

    def excluded(self, rel: str, is_dir: bool) -> bool:
        return self._exc is not None and self._exc.match_file(rel + "/" if is_dir else rel)

    def included(self, rel: str, is_dir: bool) -> bool:
        return self._inc is None or self._inc.match_file(rel + "/" if is_dir else rel)


def _compile(patterns: list[str]):
    import pathspec

    return pathspec.GitIgnoreSpec.from_lines(patterns)


def walk(base: Path | str, flt: PathFilter | None = None) -> list[tuple[str, os.stat_result]]:
    """Every entry under `base` the filter selects, as (relative path, lstat), sorted by path
    with parents first. Directories appear when selected themselves or when they hold a
    selected entry. Symlinks are never followed."""
    flt = flt or PathFilter()
    out: list[tuple[str, os.stat_result]] = []

    def scan(dirpath: str, prefix: str, inc: bool) -> None:
        with os.scandir(dirpath) as it:
            entries = sorted(it, key=lambda e: e.name)
        for e in entries:
            rel = prefix + e.name
            st = e.stat(follow_symlinks=False)
            isdir = stat.S_ISDIR(st.st_mode)
            if flt.excluded(rel, isdir):
                continue
            if isdir:
                sub_inc = inc or flt.included(rel, True)
                mark = len(out)
                out.append((rel, st))
                scan(e.path, rel + "/", sub_inc)
                if not sub_inc and len(out) == mark + 1:
                    out.pop()  # holds nothing selected
            elif inc or flt.included(rel, False):
                out.append((rel, st))

    scan(os.fspath(base), "", flt._inc is None)
    return out
