"""One tree entry: create a copy of a non-directory (regular file with its holes, symlink,
fifo, socket, device node) with its metadata, a special file from its mode, or a hardlink
with a copy as the fallback. Paths are never followed at their last component; each may be
relative to a directory fd."""

from __future__ import annotations

import errno
import os
import stat

from llb.fsutil.data import SMALL_FILE, copy_data
from llb.fsutil.meta import Creds, Meta, apply_meta
from llb.fsutil.policy import LINK_FALLBACK
from llb.fsutil.xattrs import read_xattrs, xattr_names

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from typing import Callable

O_FILE_IN = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC  # how a file to copy is opened
_O_OUT = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_listxattr, _utime = os.listxattr, os.utime  # (per-file calls: one global lookup each)


def lstat_or_none(path: str, *, dir_fd: int | None = None) -> os.stat_result | None:
    """path's lstat, or None where nothing is."""
    try:
        return os.lstat(path, dir_fd=dir_fd)
    except FileNotFoundError:
        return None


def make_node(dst: str, mode: int, rdev: int = 0, *, dir_fd: int | None = None) -> None:
    """Create a fifo, socket, character or block device at dst (mode's type; permission
    bits 0600 until its metadata is applied)."""
    kind = stat.S_IFMT(mode)
    if kind not in (stat.S_IFIFO, stat.S_IFSOCK, stat.S_IFCHR, stat.S_IFBLK):
        raise OSError(errno.EINVAL, f"not a special file type: {oct(kind)}", dst)
    os.mknod(dst, kind | 0o600, rdev, dir_fd=dir_fd)


def copy_entry(src: str, dst: str, st: os.stat_result, *, src_dir_fd: int | None = None,
               dst_dir_fd: int | None = None, meta: Meta | None = None,
               creds: Creds | None = None) -> None:
    """Create dst (absent) as a copy of the non-directory src, whose lstat is st, with
    src's owner, mode, xattrs and times, or `meta` instead when given (a caller overriding
    some of them). creds: who new entries in dst's directory belong to (see Creds), sparing
    a chown and a chmod where they would change nothing; None: always set."""
    mode = st.st_mode
    if stat.S_ISREG(mode):
        copy_file(src, dst, st, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd, meta=meta,
                  creds=creds)
        return
    if stat.S_ISLNK(mode):
        os.symlink(os.readlink(src, dir_fd=src_dir_fd), dst, dir_fd=dst_dir_fd)
        perm = 0o777
    elif stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, "copy_entry copies no directory", src)
    else:
        make_node(dst, mode, st.st_rdev, dir_fd=dst_dir_fd)
        perm = 0o600
    if meta is None:
        meta = Meta.of(st, read_xattrs(src, dir_fd=src_dir_fd))
    have = creds.created(perm) if creds is not None else None
    apply_meta(dst, meta, dir_fd=dst_dir_fd, have=have)


def copy_file(src: str, dst: str, st: os.stat_result, *, src_dir_fd: int | None = None,
              dst_dir_fd: int | None = None, meta: Meta | None = None,
              creds: Creds | None = None, after: Callable[[int], None] | None = None) -> None:
    """Copy the regular file src (lstat st) to dst (absent), holes and metadata included;
    `after` gets dst's descriptor once written (a caller recording its ctime)."""
    fin = os.open(src, O_FILE_IN, dir_fd=src_dir_fd)
    try:
        copy_open_file(fin, st, dst, dst_dir_fd, meta, creds, after)
    finally:
        os.close(fin)


def copy_open_file(fin: int, st: os.stat_result, dst: str, dst_dir_fd: int | None = None,
                   meta: Meta | None = None, creds: Creds | None = None,
                   after: Callable[[int], None] | None = None) -> None:
    """copy_file from the source already open as fin (opened with O_FILE_IN; st: its
    fstat or lstat), its arguments positional: a tree copy's per-file call."""
    perm = (meta.mode if meta is not None else st.st_mode) & 0o777
    # created with its final permission bits (minus the umask: apply_meta knows)
    fout = os.open(dst, _O_OUT, perm, dir_fd=dst_dir_fd)
    try:
        size = st.st_size
        try:
            if 0 < size <= SMALL_FILE and st.st_blocks * 512 >= size:
                # the common small file, inline: one read, one write (copy_data
                # again, from the start, when the source changed size meanwhile)
                data = os.pread(fin, size, 0)
                if len(data) != size or os.pwrite(fout, data, 0) != size:
                    copy_data(fin, fout, size, st.st_blocks)
            else:
                copy_data(fin, fout, size, st.st_blocks)
        except BaseException:  # a full disk: no part of a file is left behind
            os.unlink(dst, dir_fd=dst_dir_fd)
            raise
        if meta is None:
            if creds is not None and st.st_uid == creds.uid and st.st_gid == creds.gid \
                    and st.st_mode & 0o7777 == perm & ~creds.umask:
                # owner and mode came with the creation: without xattrs (flistxattr on
                # the open source, the common empty answer taken here without
                # xattr_names' frames), only the times (what apply_meta would do,
                # without building a Meta per file)
                try:
                    bare = not _listxattr(fin)
                except OSError:  # xattr_names below tells a refusal (none) from an error
                    bare = False
                if bare or not xattr_names(fin):
                    _utime(fout, ns=(st.st_atime_ns, st.st_mtime_ns))
                    if after is not None:
                        after(fout)
                    return
            meta = Meta.of(st, read_xattrs(fin))
        apply_meta(fout, meta, have=creds.created(perm) if creds is not None else None)
        if after is not None:
            after(fout)
    finally:
        os.close(fout)


def try_link(src: str, dst: str, *, src_dir_fd: int | None = None,
             dst_dir_fd: int | None = None) -> bool:
    """Hardlink dst to src (never following src); False where a link cannot be made
    (fsutil.policy.LINK_FALLBACK: copy instead)."""
    try:
        os.link(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd, follow_symlinks=False)
        return True
    except OSError as e:
        if e.errno in LINK_FALLBACK:
            return False
        raise


def link_or_copy(src: str, dst: str, st: os.stat_result, *, src_dir_fd: int | None = None,
                 dst_dir_fd: int | None = None, creds: Creds | None = None) -> bool:
    """Hardlink dst to src, or copy it (with metadata) where a link cannot be made; True
    when linked."""
    if try_link(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd):
        return True
    copy_entry(src, dst, st, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd, creds=creds)
    return False
