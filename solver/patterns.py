"""Which paths of a tree an op reads: include/exclude filters with gitignore-style patterns
(pathspec) and the filtered walk that local sources and copy checksums share, and the
paths a wildcard source names (Go's filepath.Match, llb.fsutil.match), which a copy or rm
acts on and a copy's cache checksum covers: one resolver for both, so a key covers
exactly what is read."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from llb.fsutil import match, split_wildcards, walk as walk_tree
from llb.paths import clean
from llb.solver.errors import InputError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from typing import Iterable
    import pathspec


class PathFilter:
    """Which paths (relative, "/"-separated) of a tree an include/exclude pair selects.

    No include patterns selects everything; a directory matched by an exclude pattern is
    pruned with its whole subtree (as in gitignore, a child cannot be re-included)."""

    def __init__(self, include: Iterable[str] = (), exclude: Iterable[str] = ()):
        """InputError (exit 2) names a pattern that is not a valid gitignore-style one."""
        include, exclude = list(include), list(exclude)
        self._inc = _compile(include, "include") if include else None
        self._exc = _compile(exclude, "exclude") if exclude else None

    def excluded(self, rel: str, is_dir: bool) -> bool:
        return self._exc is not None and self._exc.match_file(rel + "/" if is_dir else rel)

    def included(self, rel: str, is_dir: bool) -> bool:
        return self._inc is None or self._inc.match_file(rel + "/" if is_dir else rel)


def _compile(patterns: list[str], what: str) -> pathspec.GitIgnoreSpec:
    import pathspec

    try:
        return pathspec.GitIgnoreSpec.from_lines(patterns)
    except (ValueError, re.error):  # (pathspec's pattern errors are ValueErrors)
        pass
    for p in patterns:  # name the first bad one
        try:
            pathspec.GitIgnoreSpec.from_lines([p])
        except (ValueError, re.error) as e:
            why = e.msg if isinstance(e, re.error) else "not a gitignore pattern"
            raise InputError(f"{what} pattern {p!r} is invalid: {why}", path=p) from None
    raise InputError(f"{what} patterns {patterns!r} are invalid")


def walk(base: Path | str, flt: PathFilter | None = None) -> list[tuple[str, os.stat_result]]:
    """Every entry under `base` the filter selects, as (relative path, lstat), in the
    toolkit's walk order (names sorted bytewise, parents first). Directories appear when
    selected themselves or when they hold a selected entry. Symlinks are never followed."""
    flt = flt or PathFilter()
    out: list[tuple[str, os.stat_result]] = []
    # per directory walked into: (everything below is included, its index in out)
    dirs: list[tuple[bool, int]] = []
    for e in walk_tree(base, leave=True):
        if e.leaving:
            below, mark = dirs.pop()
            if not below and len(out) == mark + 1:
                out.pop()  # holds nothing selected
            continue
        st = e.st
        assert st is not None  # a walk with stat
        if flt.excluded(e.rel, e.is_dir):
            e.prune()
            continue
        inc = dirs[-1][0] if dirs else flt._inc is None
        if e.is_dir:
            dirs.append((inc or flt.included(e.rel, True), len(out)))
            out.append((e.rel, st))
        elif inc or flt.included(e.rel, False):
            out.append((e.rel, st))
    return out


def root_path(root: str, p: str, follow: bool) -> str:
    """fsutil's rootPath: resolve p inside root, the final component only when follow;
    FileNotFoundError when a component on the way is not a directory."""
    from llb.snapshot.errors import PathEscapeError, SnapshotError  # (not at start-up)
    from llb.snapshot.paths import resolve_in_root

    p = clean("/" + p)
    if p == "/":
        return root
    try:
        return str(resolve_in_root(Path(root), p, follow_final=follow))
    except PathEscapeError:
        raise
    except SnapshotError as e:
        raise FileNotFoundError(2, str(e), p) from None


def resolve_wildcards(root: str, pattern: str, follow: bool) -> list[str]:
    """Paths (relative to root) matching a wildcard path (Go's filepath.Match on the part
    from its first wildcard component on), in walk order; [pattern's literal path] when
    it holds no wildcard. A matched directory is not searched further; a missing base
    directory matches nothing."""
    base, rest = split_wildcards(pattern)
    if not rest:
        return [base]
    start = root_path(root, base, follow)
    try:
        if not stat.S_ISDIR(os.lstat(start).st_mode):
            return []
    except (FileNotFoundError, NotADirectoryError):
        return []
    # a class may hold "/" (Go's `[^a]` matches it): depth unbounded then
    depth = None if "[" in rest else rest.count("/") + 1
    out: list[str] = []
    for e in walk_tree(start, stat=False):
        if match(rest, e.rel):
            out.append(os.path.relpath(os.path.join(start, e.rel), root))
            e.prune()
        elif depth is not None and e.rel.count("/") + 1 >= depth:
            e.prune()
    return out
