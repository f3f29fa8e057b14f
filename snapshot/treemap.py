"""Tree maps: what a native tree held (per directory: its identity, metadata and each
entry's inode), so a trusted child that took over its parent's tree can be diffed against
the parent without the parent's directory existing any more. A directory whose inode and
ctime did not move had no entry added, removed or renamed and no metadata change, so it
costs one lstat; others one scandir, lstat and listxattr. Entries are compared by d_ino.
A directory whose ctime was within _RACY_NS of the moment it was recorded is recorded as
unknown (rescanned next time): a kernel with coarse timestamps (one per tick) may give a
change made right after recording the very same ctime (git's "racy" entries)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from llb.fsutil import read_xattrs
from llb.records import Record
from llb.snapshot.layers import Change, change_key

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from typing import Iterator

DIR = -1  # the inode slot of a directory entry
_RACY_NS = 20_000_000  # two ticks at HZ=100: a coarse ctime lags real time by less


class DirRecord(Record):
    ident: tuple[int, int]        # (st_ino, st_ctime_ns): unchanged means nothing changed here
    meta: tuple                   # mode, owner, xattrs: what makes the directory "modified"
    names: dict[str, int]         # entry -> inode, or DIR


TreeMap = dict[str, DirRecord]  # rel dir -> record


def _record(path: str, st: os.stat_result) -> DirRecord:
    with os.scandir(path) as it:
        names = {e.name: DIR if e.is_dir(follow_symlinks=False) else e.inode() for e in it}
    meta = (st.st_mode, st.st_uid, st.st_gid, tuple(sorted(read_xattrs(path).items())))
    racy = time.time_ns() - st.st_ctime_ns < _RACY_NS
    return DirRecord((st.st_ino, -1 if racy else st.st_ctime_ns), meta, names)


def _subdirs(rel: str, path: str, names: dict[str, int]) -> Iterator[tuple[str, str]]:
    for name, ino in names.items():
        if ino == DIR:
            yield (f"{rel}/{name}" if rel else name, os.path.join(path, name))


def build_map(root: Path) -> TreeMap:
    """The map of the tree at root."""
    out: TreeMap = {}
    stack = [("", str(root))]
    while stack:
        rel, path = stack.pop()
        rec = out[rel] = _record(path, os.lstat(path))
        stack.extend(_subdirs(rel, path, rec.names))
    return out


def map_changes(root: Path, old: TreeMap) -> tuple[list[Change], TreeMap]:
    """Changes of the tree at root against the map of its former self, and its new map.
    Valid only for trusted trees (no inode modified in place)."""
    out: list[Change] = []
    new: TreeMap = {}
    stack = [("", str(root))]
    while stack:
        rel, path = stack.pop()
        st = os.lstat(path)
        before = old.get(rel)
        if before is not None and before.ident == (st.st_ino, st.st_ctime_ns):
            new[rel] = before  # untouched directory: only its subdirectories may differ
            stack.extend(_subdirs(rel, path, before.names))
            continue
        rec = new[rel] = _record(path, st)
        if before is not None and rel and before.meta != rec.meta:
            out.append(Change(rel, "modify"))
        was = before.names if before is not None else {}
        for name, ino in rec.names.items():
            r = f"{rel}/{name}" if rel else name
            prev = was.get(name)
            if ino == DIR:
                stack.append((r, os.path.join(path, name)))
                if prev is None:
                    out.append(Change(r, "add"))
                elif prev != DIR:
                    out.append(Change(r, "modify"))  # its entries are all "add" below
                continue
            if prev is None:
                out.append(Change(r, "add"))
            elif prev != ino:
                out.append(Change(r, "modify"))
        for name in was.keys() - rec.names.keys():
            out.append(Change(f"{rel}/{name}" if rel else name, "delete"))
    out.sort(key=change_key)
    return out, new
