"""Where benchmark runs live on disk: directories ext4 spreads over its block groups.

On ext4 without a journal (these machines), every file creation skips, one by one, the
inodes of its block group that were freed recently (`recently_deleted()` in
fs/ext4/ialloc.c; "recently" lasts as long as the inode table stays cached, minutes and
more): after a benchmark deletes its ~100k files, the next one creating files in the same
group pays up to 20x per file. A parent carrying ext4's "top directory" flag
(FS_TOPDIR_FL) has its subdirectories placed like top-level ones, spread to groups with
room, so each run starts away from the inodes earlier runs freed.

Deletions are the other half: `make bench` (bench/run.py) gives every benchmark one trash
directory (BENCH_TRASH) and empties it only after the last one, so that no benchmark times
its files on the inodes another one has just freed; discard() moves a benchmark's scratch
there, or deletes it at once when run alone."""

from __future__ import annotations

import array
import fcntl
import os
import shutil
import tempfile
from pathlib import Path

_FS_IOC_GETFLAGS, _FS_IOC_SETFLAGS, _FS_TOPDIR_FL = 0x80086601, 0x40086602, 0x00020000
TRASH_ENV = "BENCH_TRASH"  # the shared trash directory of a `make bench` run (bench/run.py)


def spread(parent: Path) -> Path:
    """parent (created if missing), flagged so that its subdirectories are spread over the
    block groups; where the filesystem has no such flag, placement is as usual."""
    parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            flags = array.array("i", [0])
            fcntl.ioctl(fd, _FS_IOC_GETFLAGS, flags, True)
            if not flags[0] & _FS_TOPDIR_FL:
                flags[0] |= _FS_TOPDIR_FL
                fcntl.ioctl(fd, _FS_IOC_SETFLAGS, flags)
        finally:
            os.close(fd)
    except OSError:
        pass  # not ext4 (or no flags)
    return parent


def fresh_dir(parent: Path, prefix: str = "run-") -> Path:
    """A new directory under the spread parent."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir=spread(parent)))


def discard(path: Path) -> None:
    """Remove path, a benchmark's scratch: into the run's shared trash (BENCH_TRASH, emptied
    by bench/run.py after the last benchmark) when there is one on the same filesystem,
    else deleted now."""
    if not os.path.lexists(path):
        return
    trash = os.environ.get(TRASH_ENV)
    if trash:
        try:
            os.rename(path, tempfile.mkdtemp(prefix=f"{path.name}-", dir=trash) + "/it")
            return
        except OSError:
            pass  # another filesystem, or a mount below path: delete it here
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
