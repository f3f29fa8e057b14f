"""Laying out a layer's content from a full tree and its recorded diff: each added or
modified entry hardlinked from the tree (copied where linking fails, hardlinks among them
kept), its parent directories recreated with the tree's metadata, and the parent directory
of every deletion too (a merge creates it). For an overlay upperdir, deletions also become
kernel whiteouts (character devices 0/0); a directory whose lower was replaced keeps
explicit whiteouts for what it lost (the diff lists them), so no opaque marker is needed.
That is what a trusted overlay step, which ran on a plain tree instead of a mount, leaves
as its layer, and what the native snapshotter keeps as `layer/`."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from llb.fsutil import copy_entry, copy_meta, set_times, try_link
from llb.snapshot.layers import Change

_WHITEOUT = stat.S_IFCHR | 0o000


def make_whiteout(path: str, shared: str | None = None) -> str:
    """An overlay whiteout at path: what the kernel writes when a lower entry is deleted.
    shared: a whiteout to hardlink instead of making a new inode, as overlayfs shares one
    among its own (half the cost of a mknod on ext4). Returns the whiteout to share next."""
    if shared is not None:
        try:
            os.link(shared, path)
            return shared
        except OSError as e:
            if e.errno != errno.EMLINK:
                raise
    os.mknod(path, _WHITEOUT, os.makedev(0, 0))
    return path


def write_layer(tree: Path, dest: Path, changes: list[Change], *, whiteouts: bool = False
                ) -> None:
    """Create dest (absent) holding `changes` of the full tree at `tree` (see the module
    docstring); whiteouts: mark deletions as overlay does (an upperdir)."""
    src, dst = os.fspath(tree), os.fspath(dest)
    made: dict[str, os.stat_result] = {}

    def ensure_dir(rel: str) -> None:
        """Make rel and its missing parents, top down, with the tree's metadata (times
        last, at the end)."""
        todo = []
        while rel not in made:
            todo.append(rel)
            if not rel:
                break
            rel = rel.rpartition("/")[0]
        for r in reversed(todo):
            s, d = (f"{src}/{r}", f"{dst}/{r}") if r else (src, dst)
            st = os.lstat(s)
            os.mkdir(d, 0o700)
            copy_meta(s, d, st, times=False)
            made[r] = st

    ensure_dir("")
    copied: dict[tuple[int, int], str] = {}  # hardlinks inside the layer stay hardlinks
    whiteout: str | None = None  # the layer's whiteouts are hardlinks of its first one
    for ch in changes:
        parent = ch.path.rpartition("/")[0]
        if ch.kind == "delete":
            if parent not in made:
                try:
                    if not stat.S_ISDIR(os.lstat(f"{src}/{parent}" if parent else src).st_mode):
                        continue
                except FileNotFoundError:
                    continue
                ensure_dir(parent)
            if whiteouts:
                whiteout = make_whiteout(f"{dst}/{ch.path}", whiteout)
            continue
        ensure_dir(parent)
        sp, dp = f"{src}/{ch.path}", f"{dst}/{ch.path}"
        st = os.lstat(sp)
        if stat.S_ISDIR(st.st_mode):
            ensure_dir(ch.path)
        elif not try_link(sp, dp):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in copied:
                os.link(copied[key], dp)
                continue
            copy_entry(sp, dp, st)
            copied[key] = dp
    for rel in sorted(made, key=lambda r: -r.count("/") - 1 if r else 0):  # deepest first
        st = made[rel]
        set_times(f"{dst}/{rel}" if rel else dst, st.st_mtime_ns, st.st_atime_ns)
