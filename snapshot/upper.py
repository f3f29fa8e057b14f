"""Writing an overlay upperdir from a recorded diff: what a trusted overlay step, which ran
on a plain materialised tree instead of an overlay mount, leaves as its layer, so exec
mounts, views, merges and exports see an ordinary overlay snapshot. Added and modified
entries are hardlinked from the tree (copied when linking fails), their parent directories
recreated with the tree's metadata (overlay shows a merged directory with its upper's
attributes), deletions become kernel whiteouts (character devices 0/0)."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from llb.snapshot.copy import copy_entry
from llb.snapshot.layers import Change, path_key
from llb.snapshot.metadata import copy_metadata

_WHITEOUT = stat.S_IFCHR | 0o000


def make_whiteout(path: str) -> None:
    """An overlay whiteout at path: what the kernel writes when a lower entry is deleted."""
    os.mknod(path, _WHITEOUT, os.makedev(0, 0))


def write_upper(tree: Path, upper: Path, changes: list[Change]) -> None:
    """Create upper (absent) holding `changes` of the full tree at `tree` as an overlay
    upperdir. A directory whose lower was replaced keeps explicit whiteouts for what it
    lost (the diff lists them), so no opaque marker is needed."""
    src, dst = str(tree), str(upper)
    made: dict[str, os.stat_result] = {}

    def ensure_dir(rel: str) -> None:
        if rel in made:
            return
        if rel:
            ensure_dir(os.path.dirname(rel))
        s = os.path.join(src, rel) if rel else src
        d = os.path.join(dst, rel) if rel else dst
        st = os.lstat(s)
        os.mkdir(d, 0o700)
        copy_metadata(s, d, st, times=False)
        made[rel] = st

    ensure_dir("")
    for ch in changes:
        ensure_dir(os.path.dirname(ch.path))
        d = os.path.join(dst, ch.path)
        if ch.kind == "delete":
            make_whiteout(d)
            continue
        s = os.path.join(src, ch.path)
        st = os.lstat(s)
        if stat.S_ISDIR(st.st_mode):
            ensure_dir(ch.path)
            continue
        try:
            os.link(s, d, follow_symlinks=False)
        except OSError as e:
            if e.errno not in (errno.EXDEV, errno.EMLINK, errno.EPERM):
                raise
            copy_entry(s, d, st)
    for rel in sorted(made, key=lambda r: -len(path_key(r)) if r else 0):
        st = made[rel]
        os.utime(os.path.join(dst, rel) if rel else dst, ns=(st.st_atime_ns, st.st_mtime_ns))
