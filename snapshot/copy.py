"""Whole-tree copies with full metadata fidelity: `copy_tree` (new inodes: what a mutable
snapshot a process may write must be) and `link_tree` (directories recreated, everything
else hardlinked: for trusted writers that replace files instead of editing them)."""

from __future__ import annotations

import errno
import os
import shutil
import stat
from pathlib import Path

from snapshot.metadata import copy_metadata

_CHUNK = 1 << 20


def copy_file(src: str, dst: str, st: os.stat_result) -> None:
    """Copy one regular file's content, keeping holes (SEEK_DATA/SEEK_HOLE) so sparse files
    stay sparse; metadata is the caller's job."""
    fin = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fout = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            size = st.st_size
            if size and st.st_blocks * 512 < size:
                _copy_sparse(fin, fout, size)
            elif size:
                _copy_range(fin, fout, 0, size)
            os.ftruncate(fout, size)
        finally:
            os.close(fout)
    finally:
        os.close(fin)


def _copy_sparse(fin: int, fout: int, size: int) -> None:
    pos = 0
    while pos < size:
        try:
            data = os.lseek(fin, pos, os.SEEK_DATA)
        except OSError as e:
            if e.errno == errno.ENXIO:  # only a hole is left
                return
            raise
        hole = os.lseek(fin, data, os.SEEK_HOLE)
        _copy_range(fin, fout, data, hole - data)
        pos = hole


def _copy_range(fin: int, fout: int, off: int, count: int) -> None:
    """Copy count bytes at off (same offset in both): copy_file_range, or pread/pwrite
    where the kernel refuses it (e.g. from an overlay mount to another filesystem)."""
    end = off + count
    while off < end:
        try:
            n = os.copy_file_range(fin, fout, min(end - off, _CHUNK), off, off)
        except OSError as e:
            if e.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                raise
            break
        if n == 0:
            return
        off += n
    while off < end:
        data = os.pread(fin, min(end - off, _CHUNK), off)
        if not data:
            return
        os.pwrite(fout, data, off)
        off += len(data)


def copy_entry(src: str, dst: str, st: os.stat_result) -> None:
    """Create dst as a copy of the non-directory src (file, symlink, fifo, device, socket)
    with its metadata."""
    mode = st.st_mode
    if stat.S_ISREG(mode):
        copy_file(src, dst, st)
    elif stat.S_ISLNK(mode):
        os.symlink(os.readlink(src), dst)
    elif stat.S_ISFIFO(mode):
        os.mkfifo(dst, 0o600)
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        os.mknod(dst, stat.S_IFMT(mode) | 0o600, st.st_rdev)
    elif stat.S_ISSOCK(mode):
        os.mknod(dst, stat.S_IFSOCK | 0o600)
    else:
        raise OSError(errno.EINVAL, f"unsupported file type: {src}")
    copy_metadata(src, dst, st)


def copy_dir(src: str, dst: str, st: os.stat_result) -> None:
    """Create directory dst with src's metadata except times (set them after its content)."""
    os.mkdir(dst, 0o700)
    copy_metadata(src, dst, st, times=False)


def copy_tree(src: Path, dst: Path, *, link: bool = False,
              fresh: dict[int, int] | None = None) -> None:
    """Recreate the tree at src as dst (which must not exist). Hardlinks inside src stay
    hardlinks; directory mtimes are restored after their content is written. With
    link=True every non-directory is hardlinked to src (copy fallback on EXDEV/EMLINK).
    fresh, when given, receives inode -> ctime_ns of every non-directory copied, so a
    later differ can tell an untouched copy (same ctime) without comparing it."""
    seen: dict[tuple[int, int], str] = {}
    dirs: list[tuple[str, os.stat_result]] = []
    st = os.lstat(src)
    copy_dir(str(src), str(dst), st)
    dirs.append((str(dst), st))
    stack = [(str(src), str(dst))]
    while stack:
        s, d = stack.pop()
        with os.scandir(s) as it:
            entries = list(it)
        for e in entries:
            sp, dp = e.path, os.path.join(d, e.name)
            est = e.stat(follow_symlinks=False)
            if stat.S_ISDIR(est.st_mode):
                copy_dir(sp, dp, est)
                dirs.append((dp, est))
                stack.append((sp, dp))
                continue
            if link and _try_link(sp, dp):
                continue
            key = (est.st_dev, est.st_ino)
            if est.st_nlink > 1 and key in seen:
                os.link(seen[key], dp)
            else:
                copy_entry(sp, dp, est)
                if est.st_nlink > 1:
                    seen[key] = dp
            if fresh is not None:
                cst = os.lstat(dp)
                fresh[cst.st_ino] = cst.st_ctime_ns
    for d, dst_st in reversed(dirs):
        os.utime(d, ns=(dst_st.st_atime_ns, dst_st.st_mtime_ns))


def link_tree(src: Path, dst: Path) -> None:
    """copy_tree with hardlinks for every non-directory."""
    copy_tree(src, dst, link=True)


def _try_link(src: str, dst: str) -> bool:
    try:
        os.link(src, dst, follow_symlinks=False)
        return True
    except OSError as e:
        if e.errno in (errno.EXDEV, errno.EMLINK, errno.EPERM):
            return False
        raise


def remove_tree(path: Path) -> None:
    """rm -rf that tolerates a missing path."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)
