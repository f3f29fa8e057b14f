"""Extended attributes, read and written without following a final symlink: a path (relative
to a directory fd when one is given), or an open file descriptor.

overlayfs' own `trusted.overlay.*` attributes (whiteouts, opaque markers, redirects) are
interpreted by the kernel, never carried from one tree to another. Attributes the target
cannot hold are skipped (fsutil.policy.xattr_refused); any other failure is raised."""

from __future__ import annotations

import os
from collections.abc import Mapping

from llb.fsutil.policy import XATTR_GONE, xattr_refused

OVERLAY_PREFIX = "trusted.overlay."

Target = str | int  # a path or an open file descriptor


def _where(target: Target, dir_fd: int | None) -> tuple[Target, bool]:
    """(what to pass to os.*xattr, follow_symlinks) for target. The xattr calls take no
    dir_fd: a name in a directory fd is reached through /proc/self/fd, a short path
    whatever the directory's depth (the final component is still not followed)."""
    if isinstance(target, int):
        return target, True  # an fd: nothing to follow
    if dir_fd is None:
        return target, False
    return f"/proc/self/fd/{dir_fd}/{target}", False


def xattr_names(target: Target, *, dir_fd: int | None = None) -> list[str]:
    """The names of target's xattrs worth carrying (overlayfs' private ones left out)."""
    where, follow = _where(target, dir_fd)
    try:
        names = os.listxattr(where, follow_symlinks=follow)
    except OSError as e:
        if xattr_refused(e):
            return []
        raise
    if not names:
        return names
    return sorted(n for n in names if not n.startswith(OVERLAY_PREFIX))


def read_xattrs(target: Target, *, dir_fd: int | None = None) -> dict[str, bytes]:
    """target's xattrs worth carrying, name -> value, in name order."""
    names = xattr_names(target, dir_fd=dir_fd)
    if not names:
        return {}
    where, follow = _where(target, dir_fd)
    out: dict[str, bytes] = {}
    for name in names:
        try:
            out[name] = os.getxattr(where, name, follow_symlinks=follow)
        except OSError as e:
            if e.errno not in XATTR_GONE and not xattr_refused(e):
                raise
    return out


def write_xattrs(target: Target, values: Mapping[str, bytes], *, dir_fd: int | None = None,
                 replace: bool = False) -> None:
    """Set each xattr on target (those it cannot hold are skipped). replace: also remove
    target's own carried xattrs that values lacks, so it ends with exactly that set."""
    where, follow = _where(target, dir_fd)
    if replace:
        for name in xattr_names(target, dir_fd=dir_fd):
            if name not in values:
                os.removexattr(where, name, follow_symlinks=follow)
    for name, value in values.items():
        if name.startswith(OVERLAY_PREFIX):
            continue
        try:
            os.setxattr(where, name, value, follow_symlinks=follow)
        except OSError as e:
            if not xattr_refused(e):
                raise


def copy_xattrs(src: Target, dst: Target, *, src_dir_fd: int | None = None,
                dst_dir_fd: int | None = None, replace: bool = False) -> None:
    """Give dst the carried xattrs of src (replace: and only those)."""
    values = read_xattrs(src, dir_fd=src_dir_fd)
    if values or replace:
        write_xattrs(dst, values, dir_fd=dst_dir_fd, replace=replace)
