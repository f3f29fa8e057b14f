"""Path resolution that never leaves a root, whatever symlinks the tree holds: the
semantics of openat2(RESOLVE_IN_ROOT), done component by component with lstat."""

from __future__ import annotations

import os
import stat

from llb.snapshot.errors import PathEscapeError, SnapshotError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from pathlib import Path

_MAX_SYMLINKS = 40  # Linux's MAXSYMLINKS


def resolve_in_root(root: str | os.PathLike[str], path: str, *,
                    follow_final: bool = True) -> Path:
    """Resolve `path` as if `root` were "/": `..` stops at root, absolute symlink targets
    are taken relative to root. Missing trailing components are joined as they are.

    With follow_final=False a final symlink is returned itself (for rm, lchown, ...)."""
    from pathlib import Path  # not for a cached solve (pathlib loads re, enum, ...)

    if "\x00" in path:
        raise PathEscapeError(f"path contains a NUL byte: {path!r}", path=path)
    top = Path(os.path.abspath(root))
    pending = [p for p in path.split("/") if p not in ("", ".")]
    pending.reverse()  # a stack: next component at the end
    parts: list[str] = []  # resolved components below root, all existing non-symlinks
    links = 0
    while pending:
        comp = pending.pop()
        if comp == "..":
            if parts:  # at root, ".." stays at root
                parts.pop()
            continue
        cur = os.path.join(top, *parts, comp)
        try:
            st = os.lstat(cur)
        except FileNotFoundError:  # later components are looked up again: ".." may return
            parts.append(comp)
            continue
        except NotADirectoryError:
            raise SnapshotError(f"not a directory: /{'/'.join(parts)}", path=path) from None
        if stat.S_ISLNK(st.st_mode) and (pending or follow_final):
            links += 1
            if links > _MAX_SYMLINKS:
                raise SnapshotError(f"too many levels of symbolic links: {path}", path=path)
            target = os.readlink(cur)
            if target.startswith("/"):
                parts = []
            more = [p for p in target.split("/") if p not in ("", ".")]
            pending.extend(reversed(more))
            continue
        parts.append(comp)
    result = Path(top, *parts)
    if os.path.commonpath([top, result]) != str(top):  # defensive: cannot happen
        raise PathEscapeError(f"path escapes its root: {path}", path=path)
    return result


def join_beneath(root: str | os.PathLike[str], rel: str) -> Path:
    """Join a recorded relative path under root lexically, refusing `..`, absolute paths
    and NUL (RESOLVE_BENEATH for names that must already be clean, e.g. diff records)."""
    if "\x00" in rel or rel.startswith("/") or ".." in rel.split("/"):
        raise PathEscapeError(f"path escapes its root: {rel!r}", path=rel)
    from pathlib import Path  # not for a cached solve (pathlib loads re, enum, ...)

    return Path(root, rel) if rel else Path(root)
