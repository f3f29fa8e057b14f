"""The C library calls Python's os module lacks (the new mount API, umount2, fallocate with
FALLOC_FL_KEEP_SIZE), through ctypes. Imported where a call is made, not at the top of
snapshot/mount.py and snapshot/db.py: importing ctypes (its ~30 type classes and the
_ctypes extension) cost every cached solve ~9M instructions, and a cached solve mounts
nothing and allocates no WAL index on a filesystem with page-sized blocks."""

from __future__ import annotations

import ctypes
import os

# the C library this process already runs on (no ctypes.util.find_library: it imports
# subprocess and tempfile)
_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
_FALLOC_FL_KEEP_SIZE = 1


def _checked(ret: int) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return ret


def syscall(number: int, *args: object) -> int:
    """syscall(2) `number` with `args` (ints as C ints, bytes as char *, uint() for
    unsigned ints); its result, or OSError with its errno."""
    return _checked(_libc.syscall(number, *args))


def uint(value: int) -> object:
    """`value` passed as a C unsigned int."""
    return ctypes.c_uint(value)


def umount2(target: bytes, flags: int) -> None:
    """umount2(2), or OSError with its errno."""
    _checked(_libc.umount2(target, flags))


def fallocate_keep_size(fd: int, length: int) -> None:
    """Give the first `length` bytes of `fd`'s file real blocks without changing its size
    (fallocate(2) with FALLOC_FL_KEEP_SIZE), or OSError with its errno."""
    _checked(_libc.fallocate(fd, _FALLOC_FL_KEEP_SIZE, 0, length))
