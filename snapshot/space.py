"""Free space on a root's filesystem, and the reserve that lets `llb prune` work on a full
disk.

SQLite needs room to change a database, deleting rows included: a WAL file for the
changed pages and a shared-memory index (`-shm`) it maps into memory. A write into that
mapping that the filesystem cannot back is no error but SIGBUS (on filesystems whose blocks
are smaller than a page, 1 KiB-block ext4 for one, or copy-on-write ones). So no database is
opened where less than MIN_FREE is free (NoSpaceError instead), and every root keeps
`<root>/reserve`, RESERVE bytes allocated while there was room: a prune on a full disk
deletes it first, which gives the databases room to delete the records and snapshots that
free the rest, and allocates it again once there is room."""

from __future__ import annotations

import os

MIN_FREE = 256 * 1024  # bytes: below this no database is opened (see the module docstring)
RESERVE = 8 * 1024 * 1024  # bytes kept in <root>/reserve for a prune on a full disk
RESERVE_NAME = "reserve"


def free_bytes(path: str | os.PathLike[str]) -> int:
    """Bytes free for ordinary writes on path's filesystem (statvfs's f_bavail), for root
    too: llb leaves the blocks a filesystem keeps for root (and the clusters ext4 keeps
    for itself, which f_bfree counts) to the system."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def reserve_path(root: str | os.PathLike[str]) -> str:
    return os.path.join(root, RESERVE_NAME)


def ensure_reserve(root: str | os.PathLike[str]) -> bool:
    """Allocate the root's reserve if it is missing and the disk has room for it and more
    (twice its size beyond MIN_FREE); True when it is there now."""
    path = reserve_path(root)
    if os.path.exists(path):
        return True
    try:
        if free_bytes(root) < 2 * RESERVE + MIN_FREE:
            return False
        tmp = os.path.join(root, f".{RESERVE_NAME}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.posix_fallocate(fd, 0, RESERVE)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        return True
    except OSError:  # no room after all, or a filesystem without fallocate: go without
        try:
            os.unlink(os.path.join(root, f".{RESERVE_NAME}.{os.getpid()}"))
        except OSError:
            pass
        return False


def release_reserve(root: str | os.PathLike[str]) -> int:
    """Delete the root's reserve (a prune on a full disk); the bytes it freed."""
    path = reserve_path(root)
    try:
        size = os.lstat(path).st_blocks * 512
        os.unlink(path)
    except FileNotFoundError:
        return 0
    return size
