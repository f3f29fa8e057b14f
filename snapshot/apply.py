"""Copy one tree entry with all its metadata: the merge's fallback when a hardlink cannot be
made (EXDEV, EMLINK). Content keeps its holes; owner is set before xattrs so file
capabilities survive; overlayfs' own `trusted.overlay.*` xattrs are never copied."""

from __future__ import annotations

import errno
import os
import stat

_OVERLAY_XATTR = "trusted.overlay."
# Errors from setxattr that mean "this filesystem cannot hold that attribute", not a bug.
_XATTR_UNSUPPORTED = (errno.EOPNOTSUPP, errno.ENOTSUP)
# copy_file_range refuses these; the data is then moved with sendfile instead.
_CFR_FALLBACK = (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EBADF)


def _read_umask() -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return None


# A new file's owner and permission bits, when they already are the source's, need no
# fchown/fchmod (one syscall each saved per copied file).
_UMASK = _read_umask()
_EUID, _EGID = os.geteuid(), os.getegid()


def xattr_names(target: str | int) -> list[str]:
    """The xattr names of target (a path, never followed, or an fd) worth copying:
    overlayfs' private ones left out."""
    try:
        names = os.listxattr(target, follow_symlinks=isinstance(target, int))
    except OSError as e:
        if e.errno in _XATTR_UNSUPPORTED:
            return []
        raise
    return [n for n in names if not n.startswith(_OVERLAY_XATTR)]


def copy_xattrs(src: str | int, dst: str | int, *, replace: bool = False) -> None:
    """Give dst the xattrs of src (never following a final symlink). With replace=True,
    dst's own xattrs that src lacks are removed, so dst ends with exactly src's set."""
    names = xattr_names(src)
    src_follow = isinstance(src, int)
    dst_follow = isinstance(dst, int)
    if replace:
        keep = set(names)
        for name in xattr_names(dst):
            if name not in keep:
                os.removexattr(dst, name, follow_symlinks=dst_follow)
    for name in names:
        value = os.getxattr(src, name, follow_symlinks=src_follow)
        try:
            os.setxattr(dst, name, value, follow_symlinks=dst_follow)
        except OSError as e:
            if e.errno not in _XATTR_UNSUPPORTED:
                raise


def copy_entry(src: str, dst: str, st: os.stat_result) -> None:
    """Create dst as a copy of the non-directory src (whose lstat is st): regular file,
    symlink, fifo, socket or device, with mode, owner, xattrs and mtime (ns)."""
    mode = st.st_mode
    if stat.S_ISREG(mode):
        _copy_file(src, dst, st)
    elif stat.S_ISLNK(mode):
        os.symlink(os.readlink(src), dst)
        os.chown(dst, st.st_uid, st.st_gid, follow_symlinks=False)
        copy_xattrs(src, dst)
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
    else:
        os.mknod(dst, stat.S_IFMT(mode) | 0o600, st.st_rdev)
        os.chown(dst, st.st_uid, st.st_gid, follow_symlinks=False)
        os.chmod(dst, stat.S_IMODE(mode))
        copy_xattrs(src, dst)
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _copy_file(src: str, dst: str, st: os.stat_result) -> None:
    mode = stat.S_IMODE(st.st_mode)
    fin = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        # created with its final permission bits (the umask may take some: chmod below)
        fout = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode & 0o777)
        try:
            _copy_data(fin, fout, st.st_size, st.st_blocks)
            # chown first: it clears setuid/setgid and file capabilities, which the
            # chmod and the xattr copy below then restore. The new file belongs to us
            # (merge directories are 0700, never setgid, while being filled).
            if (st.st_uid, st.st_gid) != (_EUID, _EGID):
                os.chown(fout, st.st_uid, st.st_gid)
            if _UMASK is None or mode != mode & 0o777 & ~_UMASK:
                os.chmod(fout, mode)
            copy_xattrs(fin, fout)
            os.utime(fout, ns=(st.st_atime_ns, st.st_mtime_ns))
        finally:
            os.close(fout)
    finally:
        os.close(fin)


def _copy_data(fin: int, fout: int, size: int, blocks: int) -> None:
    if size == 0:
        return
    if blocks * 512 >= size:
        _copy_range(fin, fout, 0, size)
        return
    # Sparse: copy only the data extents, then extend to the full size (trailing hole).
    pos = 0
    while pos < size:
        try:
            start = os.lseek(fin, pos, os.SEEK_DATA)
        except OSError as e:
            if e.errno == errno.ENXIO:  # nothing but hole from pos to the end
                break
            raise
        end = os.lseek(fin, start, os.SEEK_HOLE)
        _copy_range(fin, fout, start, end - start)
        pos = end
    os.ftruncate(fout, size)


def _copy_range(fin: int, fout: int, offset: int, count: int) -> None:
    end = offset + count
    while offset < end:
        try:
            n = os.copy_file_range(fin, fout, end - offset, offset, offset)
        except OSError as e:
            if e.errno not in _CFR_FALLBACK:
                raise
            _send_range(fin, fout, offset, end - offset)
            return
        if n == 0:  # the source shrank under us: it is immutable, so this is corruption
            raise OSError(errno.EIO, "short read while copying")
        offset += n


def _send_range(fin: int, fout: int, offset: int, count: int) -> None:
    os.lseek(fout, offset, os.SEEK_SET)
    end = offset + count
    while offset < end:
        n = os.sendfile(fout, fin, offset, end - offset)
        if n == 0:
            raise OSError(errno.EIO, "short read while copying")
        offset += n
