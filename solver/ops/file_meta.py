"""Low-level tree-entry helpers shared by the file backend and the exporters: data copies,
special files, xattrs and times, never following a final symlink.

Order matters and follows BuildKit's copier: owner first (chown clears setuid bits and file
capabilities), then mode, then times, then xattrs (so `security.capability` survives)."""

from __future__ import annotations

import errno
import os
import stat

_OVERLAY_XATTR = "trusted.overlay."
# setxattr/listxattr errors meaning "this filesystem or entry cannot hold that attribute".
_XATTR_SKIP = (errno.EOPNOTSUPP, errno.ENOTSUP, errno.EPERM)
# copy_file_range refuses these; the data then moves through sendfile.
_CFR_FALLBACK = (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EBADF)
_CHUNK = 1 << 30


def xattrs(path: str) -> dict[str, bytes]:
    """The xattrs of path (not followed) worth carrying, overlayfs' private ones left out."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as e:
        if e.errno in _XATTR_SKIP:
            return {}
        raise
    out = {}
    for name in sorted(names):
        if name.startswith(_OVERLAY_XATTR):
            continue
        try:
            out[name] = os.getxattr(path, name, follow_symlinks=False)
        except OSError as e:
            if e.errno not in (*_XATTR_SKIP, errno.ENODATA):
                raise
    return out


def umask() -> int:
    """The process umask, read without changing it (os.umask would race with threads that
    create files meanwhile); /proc/self/status has it since Linux 4.7."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def xattrs_fd(fd: int) -> dict[str, bytes]:
    """The xattrs of an open file worth carrying (like xattrs(), through a descriptor)."""
    try:
        names = os.listxattr(fd)
    except OSError as e:
        if e.errno in _XATTR_SKIP:
            return {}
        raise
    out = {}
    for name in names:
        if name.startswith(_OVERLAY_XATTR):
            continue
        try:
            out[name] = os.getxattr(fd, name)
        except OSError as e:
            if e.errno not in (*_XATTR_SKIP, errno.ENODATA):
                raise
    return out


def set_xattrs_fd(fd: int, values: dict[str, bytes]) -> None:
    """Set each xattr on an open file, skipping those it cannot hold (like set_xattrs())."""
    for name in sorted(values):
        try:
            os.setxattr(fd, name, values[name])
        except OSError as e:
            if e.errno not in _XATTR_SKIP:
                raise


def set_xattrs(path: str, values: dict[str, bytes]) -> None:
    """Set each xattr on path (not followed); attributes the target cannot hold are skipped
    (BuildKit logs and ignores xattr errors too)."""
    for name, value in values.items():
        try:
            os.setxattr(path, name, value, follow_symlinks=False)
        except OSError as e:
            if e.errno not in _XATTR_SKIP:
                raise


def copy_data(src: str, dst: str) -> None:
    """Create the regular file dst (must not exist) with src's content, mode 0600 for now."""
    fin = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        fout = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                       0o600)
        try:
            _pump(fin, fout)
        finally:
            os.close(fout)
    finally:
        os.close(fin)


_SMALL_FILE = 1 << 16


def copy_fd(fin: int, fout: int, size: int) -> None:
    """Copy an open file of known size (an immutable source) into fout: a small one with
    one read and one write (copy_file_range costs ~10x more per call on a small file here,
    worse from an overlay mount), a bigger one with one copy_file_range call; a second call
    only if the first did not reach the end."""
    if size <= _SMALL_FILE:
        data = os.read(fin, size)
        n = 0
        while n < len(data):
            n += os.write(fout, data[n:] if n else data)
    else:
        try:
            n = os.copy_file_range(fin, fout, size)
        except OSError as e:
            if e.errno not in _CFR_FALLBACK:
                raise
            n = 0
    if n != size:
        _pump(fin, fout)


def _pump(fin: int, fout: int) -> None:
    use_cfr = True
    while True:
        if use_cfr:
            try:
                n = os.copy_file_range(fin, fout, _CHUNK)
            except OSError as e:
                if e.errno not in _CFR_FALLBACK:
                    raise
                use_cfr = False
                continue
        else:
            try:
                n = os.sendfile(fout, fin, None, _CHUNK)
            except OSError as e:
                if e.errno not in (errno.EINVAL, errno.ENOSYS):
                    raise
                data = os.read(fin, 1 << 20)
                n = os.write(fout, data) if data else 0
        if n == 0:
            return


def make_node(src_st: os.stat_result, dst: str) -> None:
    """Create a fifo, socket or device node at dst like the one src_st describes."""
    os.mknod(dst, stat.S_IFMT(src_st.st_mode) | 0o600, src_st.st_rdev)


def apply_meta(path: str, st_mode: int, uid: int, gid: int, times_ns: tuple[int, int] | None,
               xattr_values: dict[str, bytes] | None) -> None:
    """Give path (not followed) owner, permission bits of st_mode (not for symlinks), times
    (atime, mtime in ns; None leaves them) and xattrs, in BuildKit's order."""
    os.chown(path, uid, gid, follow_symlinks=False)
    if not stat.S_ISLNK(st_mode):
        os.chmod(path, stat.S_IMODE(st_mode))
    if times_ns is not None:
        os.utime(path, ns=times_ns, follow_symlinks=False)
    if xattr_values:
        set_xattrs(path, xattr_values)


def set_times(path: str, times_ns: tuple[int, int]) -> None:
    """Set atime and mtime (ns) of path, not following a final symlink."""
    os.utime(path, ns=times_ns, follow_symlinks=False)
