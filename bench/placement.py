"""Where benchmark runs live on disk: directories ext4 spreads over its block groups.

On ext4 without a journal (these machines), every file creation skips, one by one, the
inodes of its block group that were freed recently (`recently_deleted()` in
fs/ext4/ialloc.c; "recently" lasts as long as the inode table stays cached, minutes and
more): after a benchmark deletes its ~100k files, the next one creating files in the same
group pays up to 20x per file. A parent carrying ext4's "top directory" flag
(FS_TOPDIR_FL) has its subdirectories placed like top-level ones, spread to groups with
room, so each run starts away from the inodes earlier runs freed."""

from __future__ import annotations

import array
import fcntl
import os
import tempfile
from pathlib import Path

_FS_IOC_GETFLAGS, _FS_IOC_SETFLAGS, _FS_TOPDIR_FL = 0x80086601, 0x40086602, 0x00020000


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
