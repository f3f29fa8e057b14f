"""Reading what a snapshot's entries are: overlay's whiteouts and opaque directories, and
whether two entries are the same (metadata, then bytes). Writing metadata is the
filesystem toolkit's (llb.fsutil). Symlinks are never followed."""

from __future__ import annotations

import os
import stat

from llb.fsutil import read_xattrs
from llb.fsutil.policy import XATTR_GONE, xattr_refused


def is_opaque(path: str | os.PathLike) -> bool:
    """True for an overlay upperdir directory marked trusted.overlay.opaque=y."""
    for name in ("trusted.overlay.opaque", "user.overlay.opaque"):
        try:
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
        except OSError as e:  # not set (ENODATA), or not readable here
            if e.errno not in XATTR_GONE and not xattr_refused(e):
                raise
    return False


def is_whiteout(st: os.stat_result) -> bool:
    """An overlay whiteout: a character device 0/0."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def same_metadata(a: os.stat_result, b: os.stat_result, apath: str, bpath: str) -> bool:
    """True when two entries have the same type, mode, owner, size, device, mtime (ns),
    symlink target and xattrs. Content is not read."""
    if (a.st_mode != b.st_mode or a.st_uid != b.st_uid or a.st_gid != b.st_gid
            or a.st_mtime_ns != b.st_mtime_ns):
        return False
    if not stat.S_ISDIR(a.st_mode) and a.st_size != b.st_size:
        return False
    if (stat.S_ISCHR(a.st_mode) or stat.S_ISBLK(a.st_mode)) and a.st_rdev != b.st_rdev:
        return False
    if stat.S_ISLNK(a.st_mode) and os.readlink(apath) != os.readlink(bpath):
        return False
    return read_xattrs(apath) == read_xattrs(bpath)


def same_content(apath: str, bpath: str, size: int) -> bool:
    """Byte comparison of two regular files of equal size."""
    if size == 0:
        return True
    with open(apath, "rb") as fa, open(bpath, "rb") as fb:
        while True:
            x = fa.read(1 << 20)
            if x != fb.read(1 << 20):
                return False
            if not x:
                return True
