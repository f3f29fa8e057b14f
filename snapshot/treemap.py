"""Tree maps: what a native tree held (per directory: its metadata and each entry's inode),
so a trusted child that took over its parent's tree can be diffed against the parent
without the parent's directory existing any more. Walking costs one scandir and one lstat
per directory; entries are compared by d_ino, never stat'ed unless changed."""

from __future__ import annotations

import os
from pathlib import Path

from snapshot.layers import Change, path_key
from snapshot.metadata import read_xattrs

DIR = -1  # the inode slot of a directory entry

# rel dir -> (metadata of the directory, {name: inode or DIR})
TreeMap = dict[str, tuple[tuple, dict[str, int]]]


def _dir_meta(path: str) -> tuple:
    """What makes a directory changed: mode, owner, xattrs (not its mtime; see differ)."""
    st = os.lstat(path)
    return (st.st_mode, st.st_uid, st.st_gid, tuple(sorted(read_xattrs(path).items())))


def _scan(path: str) -> dict[str, int]:
    with os.scandir(path) as it:
        return {e.name: DIR if e.is_dir(follow_symlinks=False) else e.inode() for e in it}


def build_map(root: Path) -> TreeMap:
    """The map of the tree at root."""
    out: TreeMap = {}
    stack = [("", str(root))]
    while stack:
        rel, path = stack.pop()
        names = _scan(path)
        out[rel] = (_dir_meta(path), names)
        for name, ino in names.items():
            if ino == DIR:
                stack.append((f"{rel}/{name}" if rel else name, os.path.join(path, name)))
    return out


def map_changes(root: Path, old: TreeMap) -> tuple[list[Change], TreeMap]:
    """Changes of the tree at root against the map of its former self, and its new map.
    Valid only for trusted trees (no inode modified in place)."""
    out: list[Change] = []
    new: TreeMap = {}
    stack = [("", str(root))]
    while stack:
        rel, path = stack.pop()
        meta = _dir_meta(path)
        names = _scan(path)
        new[rel] = (meta, names)
        before = old.get(rel)
        if before is not None and rel and before[0] != meta:
            out.append(Change(rel, "modify"))
        was = before[1] if before is not None else {}
        for name, ino in names.items():
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
        for name in was.keys() - names.keys():
            out.append(Change(f"{rel}/{name}" if rel else name, "delete"))
    out.sort(key=lambda c: path_key(c.path))
    return out, new
