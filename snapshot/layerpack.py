"""Packing a layer's recorded diff as an OCI layer tar: what an exporter compresses into a
blob. The same layer always gives the same bytes: entries sorted component-wise, the parent
directories of every change included (their metadata is part of the layer, as a merge
applies it), deletions as `.wh.NAME` whiteouts, hardlinks within the layer as hardlink
entries, numeric owners and no names, mtimes in whole seconds (clamped to SOURCE_DATE_EPOCH
when given), PAX records only where USTAR cannot say it (long or non-ASCII names, large
numbers, xattrs), and the end as two zero blocks, as Go's archive/tar writes it.

Headers are encoded here rather than by tarfile, whose PAX output depends on the Python
version (float mtimes, `hdrcharset` records) and which copies data in 16 KiB pieces."""

from __future__ import annotations

import os
import stat
from typing import Callable

from llb.snapshot.layers import Layer
from llb.fsutil import read_xattrs

BLOCK = 512
_CHUNK = 1 << 20
_BIG = 1 << 16
_WHITEOUT = ".wh."

_REG, _LINK, _SYM, _CHR, _BLK, _DIR, _FIFO, _PAX = b"0", b"1", b"2", b"3", b"4", b"5", b"6", b"x"

Sink = Callable[[bytes], object]


def pax_record(key: bytes, value: bytes) -> bytes:
    """One PAX record, "LEN key=value\\n", where LEN counts the whole record."""
    body = b" " + key + b"=" + value + b"\n"
    n = len(body) + 1
    while len(str(n).encode()) + len(body) != n:
        n = len(str(n).encode()) + len(body)
    return str(n).encode() + body


def _octal(value: int, width: int) -> bytes | None:
    """An octal USTAR field (NUL-terminated), or None when value does not fit."""
    if value < 0 or value >= 8 ** (width - 1):
        return None
    return b"%0*o\0" % (width - 1, value)


def _ascii_fits(value: bytes, width: int) -> bool:
    return len(value) <= width and value.isascii()


def header(name: bytes, typeflag: bytes, *, mode: int = 0, uid: int = 0, gid: int = 0,
           size: int = 0, mtime: int = 0, linkname: bytes = b"", devmajor: int = 0,
           devminor: int = 0, xattrs: dict[str, bytes] | None = None) -> bytes:
    """The header block(s) of one entry: a PAX extended header first when needed."""
    pax: dict[bytes, bytes] = {}
    if not _ascii_fits(name, 100):
        pax[b"path"] = name
    if not _ascii_fits(linkname, 100):
        pax[b"linkpath"] = linkname
    fields: dict[str, bytes] = {}
    for key, number, width in (("uid", uid, 8), ("gid", gid, 8), ("size", size, 12),
                               ("mtime", mtime, 12)):
        enc = _octal(number, width)
        if enc is None:
            pax[key.encode()] = str(number).encode()
            enc = b"0" * (width - 1) + b"\0"
        fields[key] = enc
    for key, value in sorted((xattrs or {}).items()):
        pax[b"SCHILY.xattr." + key.encode("utf-8", "surrogateescape")] = value
    out = b""
    if pax:
        data = b"".join(pax_record(k, v) for k, v in sorted(pax.items()))
        out = _block(b"././@PaxHeader", _PAX, 0o644, _octal(0, 8), _octal(0, 8),
                     _octal(len(data), 12), _octal(0, 12), b"", 0, 0) + data + _pad(len(data))
    return out + _block(name[:100], typeflag, mode, fields["uid"], fields["gid"], fields["size"],
                        fields["mtime"], linkname[:100], devmajor, devminor)


def _block(name: bytes, typeflag: bytes, mode: int, uid: bytes | None, gid: bytes | None,
           size: bytes | None, mtime: bytes | None, linkname: bytes, devmajor: int,
           devminor: int) -> bytes:
    assert uid and gid and size and mtime
    major = _octal(devmajor, 8) or _octal(0, 8)
    minor = _octal(devminor, 8) or _octal(0, 8)
    assert major and minor
    b = bytearray(BLOCK)
    b[0:len(name)] = name
    b[100:108] = b"%07o\0" % (mode & 0o7777)
    b[108:116] = uid
    b[116:124] = gid
    b[124:136] = size
    b[136:148] = mtime
    b[148:156] = b" " * 8
    b[156:157] = typeflag
    b[157:157 + len(linkname)] = linkname
    b[257:265] = b"ustar\x0000"
    b[329:337] = major
    b[337:345] = minor
    b[148:156] = b"%06o\0 " % sum(b)
    return bytes(b)


def _pad(n: int) -> bytes:
    return b"\0" * (-n % BLOCK)


class _Buffered:
    """Small writes gathered into chunks of about 1 MiB for the sink (a compressor)."""

    def __init__(self, sink: Sink):
        self.sink = sink
        self.buf = bytearray()

    def write(self, data: bytes) -> None:
        if len(data) >= _BIG:  # file data: passed on as it is, without another copy
            self.flush()
            self.sink(data)
            return
        self.buf += data
        if len(self.buf) >= _CHUNK:
            self.flush()

    def flush(self) -> None:
        if self.buf:
            self.sink(bytes(self.buf))
            self.buf.clear()


def pack_layer(layer: Layer, sink: Sink, *, epoch: int | None = None,
               progress: Callable[[int], None] | None = None) -> int:
    """Write `layer` (its changes, content from `layer.path`) as a tar to sink; returns the
    tar's size. epoch: clamp every mtime to it (SOURCE_DATE_EPOCH). progress(bytes of file
    data written so far)."""
    out = _Buffered(sink)
    total = 0
    written = 0
    dirs: set[str] = set()
    links: dict[tuple[int, int], bytes] = {}

    def emit(data: bytes) -> None:
        nonlocal total
        out.write(data)
        total += len(data)

    def clamp(t: int) -> int:
        return t if epoch is None or t <= epoch else epoch

    def parents(rel: str) -> None:
        parts = rel.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d in dirs:
                continue
            path = layer.path(d)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                return  # not in the layer (a deletion's parent that is gone): no entry
            if not stat.S_ISDIR(st.st_mode):
                return
            dirs.add(d)
            emit(header(os.fsencode(d) + b"/", _DIR, mode=st.st_mode, uid=st.st_uid,
                        gid=st.st_gid, mtime=clamp(st.st_mtime_ns // 1_000_000_000),
                        xattrs=read_xattrs(os.fspath(path))))

    for change in layer.changes():
        rel = change.path
        parents(rel)
        if change.kind == "delete":
            d, _, base = rel.rpartition("/")
            emit(header(os.fsencode((d + "/" if d else "") + _WHITEOUT + base), _REG,
                        mtime=clamp(0)))
            continue
        path = layer.path(rel)
        st = os.lstat(path)
        mode = st.st_mode
        name = os.fsencode(rel)
        mtime = clamp(st.st_mtime_ns // 1_000_000_000)
        if stat.S_ISDIR(mode):
            if rel not in dirs:
                dirs.add(rel)
                emit(header(name + b"/", _DIR, mode=mode, uid=st.st_uid, gid=st.st_gid,
                            mtime=mtime, xattrs=read_xattrs(os.fspath(path))))
            continue
        if stat.S_ISSOCK(mode):
            continue  # a socket is no content (containerd and BuildKit leave them out)
        xattrs = read_xattrs(os.fspath(path))
        if stat.S_ISLNK(mode):
            emit(header(name, _SYM, mode=mode, uid=st.st_uid, gid=st.st_gid, mtime=mtime,
                        linkname=os.fsencode(os.readlink(path)), xattrs=xattrs))
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            emit(header(name, _CHR if stat.S_ISCHR(mode) else _BLK, mode=mode, uid=st.st_uid,
                        gid=st.st_gid, mtime=mtime, devmajor=os.major(st.st_rdev),
                        devminor=os.minor(st.st_rdev), xattrs=xattrs))
        elif stat.S_ISFIFO(mode):
            emit(header(name, _FIFO, mode=mode, uid=st.st_uid, gid=st.st_gid, mtime=mtime,
                        xattrs=xattrs))
        else:
            key = (st.st_dev, st.st_ino)
            first = links.get(key) if st.st_nlink > 1 else None
            if first is not None:
                emit(header(name, _LINK, mode=mode, uid=st.st_uid, gid=st.st_gid, mtime=mtime,
                            linkname=first, xattrs=xattrs))
                continue
            if st.st_nlink > 1:
                links[key] = name
            emit(header(name, _REG, mode=mode, uid=st.st_uid, gid=st.st_gid, mtime=mtime,
                        size=st.st_size, xattrs=xattrs))
            written += _copy_file(path, st.st_size, emit, rel)
            emit(_pad(st.st_size))
            if progress is not None:
                progress(written)
    emit(b"\0" * (2 * BLOCK))
    out.flush()
    return total


def _copy_file(path: os.PathLike[str] | str, size: int, emit: Callable[[bytes], None],
               rel: str) -> int:
    """Emit exactly `size` bytes of the file at path (it is immutable: fewer is an error)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        left = size
        while left:
            data = os.read(fd, min(left, _CHUNK))
            if not data:
                raise OSError(f"{rel}: file shrank while being packed ({size - left} of "
                              f"{size} bytes)")
            emit(data)
            left -= len(data)
    finally:
        os.close(fd)
    return size
