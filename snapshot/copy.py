"""Whole-tree copies with full metadata fidelity: `copy_tree` (new inodes: what a mutable
snapshot a process may write must be) and `link_tree` (directories recreated, everything
else hardlinked: for trusted writers that replace files instead of editing them)."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from llb.snapshot.metadata import copy_metadata

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


def copy_entry(src: str, dst: str, st: os.stat_result, *, owned: bool = False) -> None:
    """Create dst as a copy of the non-directory src (file, symlink, fifo, device, socket)
    with its metadata. owned: dst is created with src's owner already (skip the chown)."""
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
    copy_metadata(src, dst, st, owned=owned)


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
    later differ can tell an untouched copy (same ctime) without comparing it.
    Directories are made first, in one walk; the entries are then copied by a few threads
    at once (syscalls release the GIL), shared hardlinks in this thread."""
    me = (os.geteuid(), os.getegid())
    dirs: list[tuple[str, os.stat_result]] = []
    entries: list[tuple[str, str, os.stat_result, bool]] = []  # src, dst, stat, owned
    shared: list[tuple[str, str, os.stat_result]] = []  # nlink > 1: in order, one thread
    st = os.lstat(src)
    copy_dir(str(src), str(dst), st)
    dirs.append((str(dst), st))
    stack = [(str(src), str(dst), st.st_gid)]
    while stack:
        s, d, dgid = stack.pop()
        with os.scandir(s) as it:
            for e in it:
                sp, dp = e.path, d + "/" + e.name
                est = e.stat(follow_symlinks=False)
                if stat.S_ISDIR(est.st_mode):
                    copy_dir(sp, dp, est)
                    dirs.append((dp, est))
                    stack.append((sp, dp, est.st_gid))
                elif est.st_nlink > 1 and not link:
                    shared.append((sp, dp, est))
                else:
                    # a new entry gets our uid, and our gid when its directory has it too
                    owned = (est.st_uid, est.st_gid) == me and dgid == me[1]
                    entries.append((sp, dp, est, owned))
    work = _chunks(entries)
    if len(work) > 1:
        # imported here: concurrent.futures loads logging, a start-up cost for every command
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=_THREADS) as pool:
            for f in [pool.submit(_copy_entries, c, link, fresh) for c in work]:
                f.result()
    elif work:
        _copy_entries(work[0], link, fresh)
    seen: dict[tuple[int, int], str] = {}
    for sp, dp, est in shared:
        key = (est.st_dev, est.st_ino)
        if key in seen:
            os.link(seen[key], dp)
        else:
            copy_entry(sp, dp, est)
            seen[key] = dp
        if fresh is not None:
            cst = os.lstat(dp)
            fresh[cst.st_ino] = cst.st_ctime_ns
    for d, dst_st in reversed(dirs):
        os.utime(d, ns=(dst_st.st_atime_ns, dst_st.st_mtime_ns))


_THREADS = min(4, os.cpu_count() or 1)
_PARALLEL_MIN = 128  # entries below which one thread copies them all


def _chunks(entries: list) -> list[list]:
    """Split entries for the pool: one chunk for a small tree, else a few per thread."""
    if len(entries) < _PARALLEL_MIN or _THREADS < 2:
        return [entries] if entries else []
    n = _THREADS * 4
    return [entries[i::n] for i in range(n)]


def _copy_entries(entries: list, link: bool, fresh: dict[int, int] | None) -> None:
    for sp, dp, est, owned in entries:
        if link and try_link(sp, dp):
            continue
        copy_entry(sp, dp, est, owned=owned)
        if fresh is not None:
            cst = os.lstat(dp)
            fresh[cst.st_ino] = cst.st_ctime_ns


def link_tree(src: Path, dst: Path) -> None:
    """copy_tree with hardlinks for every non-directory."""
    copy_tree(src, dst, link=True)


def try_link(src: str, dst: str) -> bool:
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
        try:
            os.rmdir(path)  # empty (a session's scratch directory, mostly): done
            return
        except OSError as e:
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
        import shutil  # imported on use: shutil loads the compression modules at import

        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)
