"""Moving a regular file's bytes between two open descriptors: copy_file_range (the kernel
copies, or reflinks, without the data passing through this process), sendfile where it
is refused, read/write where that is refused too; holes kept (SEEK_DATA/SEEK_HOLE), so a
sparse file stays sparse; a small file in one read and one write (copy_file_range costs
~10x more per call on a small file, worse from an overlay mount)."""

from __future__ import annotations

import errno
import os

from llb.fsutil.policy import COPY_RANGE_FALLBACK, SENDFILE_FALLBACK

SMALL_FILE = 1 << 16  # bytes up to which one read and one write beat copy_file_range
_CHUNK = 1 << 30  # bytes per copy_file_range / sendfile call
_BUF = 1 << 20  # bytes per read/write


def copy_data(fin: int, fout: int, size: int, blocks: int | None = None) -> None:
    """Copy the size bytes of the file open as fin (at offset 0; blocks: its st_blocks,
    when known, tells a sparse file) into the empty file open as fout. A source that turns
    out shorter than size is copied as far as it goes."""
    if size <= 0:
        return
    if blocks is not None and blocks * 512 < size:
        _copy_sparse(fin, fout, size)
        return
    if size <= SMALL_FILE:
        data = os.pread(fin, size, 0)
        n = 0
        while n < len(data):
            n += os.pwrite(fout, data[n:] if n else data, n)
        if len(data) == size:
            return
    _copy_range(fin, fout, 0, size)


def _copy_sparse(fin: int, fout: int, size: int) -> None:
    """Copy only the data extents, then give fout its full size (a trailing hole)."""
    pos = 0
    while pos < size:
        try:
            start = os.lseek(fin, pos, os.SEEK_DATA)
        except OSError as e:
            if e.errno == errno.ENXIO:  # nothing but hole from pos to the end
                break
            raise
        end = min(os.lseek(fin, start, os.SEEK_HOLE), size)
        if not _copy_range(fin, fout, start, end - start):
            break
        pos = end
    os.ftruncate(fout, size)


def _by_copy_range(fin: int, fout: int, offset: int, count: int) -> int:
    return os.copy_file_range(fin, fout, min(count, _CHUNK), offset, offset)


def _by_sendfile(fin: int, fout: int, offset: int, count: int) -> int:
    os.lseek(fout, offset, os.SEEK_SET)  # sendfile writes at fout's position
    return os.sendfile(fout, fin, offset, min(count, _CHUNK))


def _by_read_write(fin: int, fout: int, offset: int, count: int) -> int:
    data = os.pread(fin, min(count, _BUF), offset)
    return os.pwrite(fout, data, offset) if data else 0


# the ways to move bytes, fastest first, each with the errors that mean "try the next one"
_WAYS = ((_by_copy_range, COPY_RANGE_FALLBACK), (_by_sendfile, SENDFILE_FALLBACK),
         (_by_read_write, frozenset[int]()))


def _copy_range(fin: int, fout: int, offset: int, count: int) -> bool:
    """Copy count bytes at offset (the same offset in both files); False when the source
    ended first."""
    end = offset + count
    way = 0
    while offset < end:
        move, fallback = _WAYS[way]
        try:
            n = move(fin, fout, offset, end - offset)
        except OSError as e:
            if e.errno not in fallback:
                raise
            way += 1
            continue
        if n == 0:
            return False
        offset += n
    return True
