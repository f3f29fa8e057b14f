"""Computing diffs: from an overlay upperdir (whiteouts and opaque directories interpreted,
looking up single paths in the lower view, never walking it except below an opaque
directory) and by double-walking two trees (the native snapshotter and computed diffs)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from llb.fsutil import read_xattrs
from llb.snapshot.layers import Change, change_key
from llb.snapshot.metadata import is_opaque, is_whiteout, same_content, same_metadata


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _dir_meta_differs(a: os.stat_result, b: os.stat_result, apath: str, bpath: str) -> bool:
    """A directory changed when its mode, owner or xattrs did. Its mtime alone is not a
    change (BuildKit's differs agree): adding or removing an entry moves it anyway, and the
    merge takes every touched directory's metadata from the layer."""
    return (a.st_mode != b.st_mode or a.st_uid != b.st_uid or a.st_gid != b.st_gid
            or read_xattrs(apath) != read_xattrs(bpath))


def _same_file(st: os.stat_result, lst: os.stat_result, path: str, lpath: str,
               compare_content: bool) -> bool:
    """Unchanged non-directory: same metadata (mode, owner, size, mtime, target, xattrs),
    and the same bytes when asked or when both mtimes lack nanoseconds (a tar-extracted
    file; its mtime cannot tell a rewrite within the same second)."""
    if not same_metadata(st, lst, path, lpath):
        return False
    if stat.S_ISREG(st.st_mode) and (compare_content or st.st_mtime_ns % 1_000_000_000 == 0):
        return same_content(path, lpath, st.st_size)
    return True


class PathLower:
    """The lower tree as one directory (a mounted view, or a single full tree)."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = os.fspath(root)

    def lookup(self, rel: str) -> tuple[os.stat_result, str] | None:
        p = os.path.join(self.root, rel)
        st = _lstat(p)
        return (st, p) if st is not None else None

    def listdir(self, rel: str) -> list[str]:
        return os.listdir(os.path.join(self.root, rel))


class NeedView(Exception):
    """LayeredLower cannot answer cheaply: mount the lower view instead."""


class LayeredLower:
    """The lower tree as overlay layer directories (top first), looked up path by path
    with overlay's rules (whiteouts, opaque directories, files hiding directories), so a
    commit with few changes needs no mount of its parent."""

    def __init__(self, dirs: list[str]):
        self.dirs = dirs
        self._hides: dict[str, bool] = {}

    def lookup(self, rel: str) -> tuple[os.stat_result, str] | None:
        parts = rel.split("/")
        for d in self.dirs:
            p = os.path.join(d, rel)
            st = _lstat(p)
            if st is not None:
                return None if is_whiteout(st) else (st, p)
            if self._hidden_below(d, parts):
                return None
        return None

    def _hidden_below(self, d: str, parts: list[str]) -> bool:
        """Does layer d hide parts from the layers under it (a whiteout, non-directory or
        opaque directory at one of its parent paths)?"""
        for k in range(1, len(parts)):
            q = os.path.join(d, *parts[:k])
            hit = self._hides.get(q)
            if hit is None:
                st = _lstat(q)
                if st is None:
                    hit = False  # layer d has nothing here: it neither shows nor hides
                    self._hides[q] = hit
                    return False
                hit = not stat.S_ISDIR(st.st_mode) or is_opaque(q)
                self._hides[q] = hit
            if hit:
                return True
        return False

    def listdir(self, rel: str) -> list[str]:
        raise NeedView(rel)


def overlay_changes(upper: Path, lower: "PathLower | LayeredLower | None") -> list[Change]:
    """The changes an overlay upperdir holds over `lower` (the parent's tree, or None for
    an empty parent). Opaque directories become deletions of what lower had below them."""
    out: list[Change] = []
    # stack of (upper dir, rel, lower may have entries here, opaque-above)
    stack: list[tuple[str, str, bool, bool]] = [(str(upper), "", lower is not None, False)]
    while stack:
        udir, rel, has_lower, opaque = stack.pop()
        with os.scandir(udir) as it:
            entries = list(it)
        names = {e.name for e in entries}
        if opaque and has_lower and lower is not None:
            # everything lower had here and upper does not is deleted (overlay hid it)
            for name in lower.listdir(rel):
                if name not in names:
                    out.append(Change(_join(rel, name), "delete"))
        if not has_lower or lower is None:  # all additions but whiteouts (nothing below)
            base = rel + "/" if rel else ""
            for e in entries:
                r = base + e.name
                if not (e.is_file(follow_symlinks=False) or e.is_symlink()):
                    st = e.stat(follow_symlinks=False)
                    if is_whiteout(st):
                        continue
                    if stat.S_ISDIR(st.st_mode):
                        stack.append((e.path, r, False, False))
                out.append(Change(r, "add"))
            continue
        for e in entries:
            r = _join(rel, e.name)
            found = lower.lookup(r) if has_lower and lower is not None else None
            if found is None and (e.is_file(follow_symlinks=False) or e.is_symlink()):
                out.append(Change(r, "add"))  # (by d_type: no whiteout, no stat needed)
                continue
            st = e.stat(follow_symlinks=False)
            if is_whiteout(st):
                if found is not None:
                    out.append(Change(r, "delete"))
                continue
            if found is None:
                out.append(Change(r, "add"))
                if stat.S_ISDIR(st.st_mode):
                    stack.append((e.path, r, False, False))
                continue
            lst, lpath = found
            if not stat.S_ISDIR(st.st_mode):
                # a copied-up entry (chmod, or moved away and back) may equal the lower's
                if not (stat.S_IFMT(st.st_mode) == stat.S_IFMT(lst.st_mode)
                        and _same_file(st, lst, e.path, lpath, False)):
                    out.append(Change(r, "modify"))
                continue
            if not stat.S_ISDIR(lst.st_mode):
                out.append(Change(r, "modify"))
                stack.append((e.path, r, False, False))
                continue
            op = opaque or is_opaque(e.path)
            if _dir_meta_differs(st, lst, e.path, lpath):
                out.append(Change(r, "modify"))
            stack.append((e.path, r, True, op))
    out.sort(key=change_key)
    return out


def tree_changes(upper: Path, lower: str | os.PathLike[str] | None, *, compare_content: bool = False,
                 same_fs: bool = False, fresh: dict[int, int] | None = None) -> list[Change]:
    """Double-walk two full trees. The same inode in both is unchanged (trusted hardlinked
    trees make this the common, cheap case); otherwise type, mode, owner, size, mtime,
    symlink target and xattrs are compared, and with compare_content the bytes too.
    same_fs: both trees are plain directories of one filesystem (equal d_ino suffices).
    fresh: inode -> ctime_ns recorded when upper was copied from lower; an entry whose
    ctime has not moved since is that untouched copy."""
    out: list[Change] = []
    stack: list[tuple[str, str, str | None]] = [(str(upper), "", str(lower) if lower else None)]
    while stack:
        udir, rel, ldir = stack.pop()
        with os.scandir(udir) as it:
            uentries = {e.name: e for e in it}
        lentries: dict[str, os.DirEntry] = {}
        if ldir is not None:
            with os.scandir(ldir) as it:
                lentries = {e.name: e for e in it}
            for name in lentries.keys() - uentries.keys():
                out.append(Change(_join(rel, name), "delete"))
        if ldir is None:  # all additions (its d_type says whether to descend: no stat)
            base = rel + "/" if rel else ""
            for name, e in uentries.items():
                r = base + name
                out.append(Change(r, "add"))
                if e.is_dir(follow_symlinks=False):
                    stack.append((e.path, r, None))
            continue
        for name, e in uentries.items():
            r = _join(rel, name)
            le = lentries.get(name)
            if le is None:  # (its d_type says whether to descend: no stat)
                out.append(Change(r, "add"))
                if e.is_dir(follow_symlinks=False):
                    stack.append((e.path, r, None))
                continue
            if e.inode() == le.inode() and not e.is_dir(follow_symlinks=False):
                if same_fs:
                    continue
                st, lst = e.stat(follow_symlinks=False), le.stat(follow_symlinks=False)
                if st.st_dev == lst.st_dev and st.st_ino == lst.st_ino:
                    continue  # the very same inode
            st = e.stat(follow_symlinks=False)
            if fresh is not None and fresh.get(st.st_ino) == st.st_ctime_ns \
                    and not stat.S_ISDIR(st.st_mode):
                continue  # our own copy of le, untouched since (any change moves ctime)
            lst = le.stat(follow_symlinks=False)
            if stat.S_IFMT(st.st_mode) != stat.S_IFMT(lst.st_mode):
                out.append(Change(r, "modify"))
                if stat.S_ISDIR(st.st_mode):
                    stack.append((e.path, r, None))
                continue
            if stat.S_ISDIR(st.st_mode):
                if _dir_meta_differs(st, lst, e.path, le.path):
                    out.append(Change(r, "modify"))
                stack.append((e.path, r, le.path))
                continue
            if not _same_file(st, lst, e.path, le.path, compare_content):
                out.append(Change(r, "modify"))
    out.sort(key=change_key)
    return out


def _join(rel: str, name: str) -> str:
    return f"{rel}/{name}" if rel else name
