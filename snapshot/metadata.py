"""File metadata with full fidelity: xattrs (user.*, security.*, trusted.* except the
overlay's own trusted.overlay.*, which are interpreted, never copied), owner, mode incl.
setuid/setgid/sticky, and nanosecond times. Symlinks are never followed."""

from __future__ import annotations

import errno
import os
import stat

_OVERLAY_PREFIX = "trusted.overlay."


def read_xattrs(path: str | os.PathLike) -> dict[str, bytes]:
    """All xattrs of `path` itself (not a symlink's target), minus overlayfs' private ones."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EPERM, errno.ENOENT):
            return {}
        raise
    out: dict[str, bytes] = {}
    for name in names:
        if name.startswith(_OVERLAY_PREFIX):
            continue
        try:
            out[name] = os.getxattr(path, name, follow_symlinks=False)
        except OSError as e:
            if e.errno not in (errno.ENODATA, errno.ENOTSUP):
                raise
    return out


def is_opaque(path: str | os.PathLike) -> bool:
    """True for an overlay upperdir directory marked trusted.overlay.opaque=y."""
    for name in ("trusted.overlay.opaque", "user.overlay.opaque"):
        try:
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
        except OSError:
            pass
    return False


def is_whiteout(st: os.stat_result) -> bool:
    """An overlay whiteout: a character device 0/0."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def copy_metadata(src: str | os.PathLike, dst: str | os.PathLike, st: os.stat_result | None = None,
                  *, times: bool = True, owned: bool = False) -> None:
    """Give dst the owner, xattrs, mode and (optionally) times of src. Owner goes first
    (chown clears setuid bits and file capabilities), then xattrs, then mode. owned: the
    caller knows dst was just created with src's owner already (no chown needed)."""
    if st is None:
        st = os.lstat(src)
    link = stat.S_ISLNK(st.st_mode)
    if not owned:
        try:
            os.chown(dst, st.st_uid, st.st_gid, follow_symlinks=False)
        except PermissionError:
            pass  # not root: keep our own owner
    for name, value in read_xattrs(src).items():
        try:
            os.setxattr(dst, name, value, follow_symlinks=False)
        except OSError as e:
            if e.errno not in (errno.ENOTSUP, errno.EPERM):
                raise
    if not link:
        os.chmod(dst, stat.S_IMODE(st.st_mode))
    if times:
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


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
