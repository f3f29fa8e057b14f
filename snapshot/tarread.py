"""Reading a layer tar as a stream of entries, for unpacking: headers decoded by tarfile's
own `TarInfo.frombuf` (USTAR, GNU and base-256 fields, the checksum), PAX records (path,
linkpath, size, ids, nanosecond times, `SCHILY.xattr.*`) and GNU long names applied here,
and file data handed out in large pieces straight from the (decompressed) stream: tarfile's
stream mode copies every byte through its own buffer several times, which a 1 GiB layer
pays in seconds. GNU sparse entries (which the image spec says not to use) are refused."""

from __future__ import annotations

import tarfile
from dataclasses import dataclass, field
from typing import Protocol

from llb.snapshot.errors import LayerError

BLOCK = 512
_MAX_META = 1 << 20  # bytes a PAX header or GNU long name may have
_CHUNK = 1 << 20


class Source(Protocol):
    """What entries are read from: read(n) returning up to n bytes (b"" at the end)."""

    def read(self, size: int = -1, /) -> bytes | memoryview: ...


@dataclass
class Entry:
    """One entry: its cleaned-up header fields (name as the tar says it)."""

    name: str
    type: bytes
    mode: int
    uid: int
    gid: int
    size: int
    mtime_ns: int
    atime_ns: int | None
    linkname: str
    devmajor: int
    devminor: int
    xattrs: dict[str, bytes] = field(default_factory=dict)

    def isdir(self) -> bool:
        return self.type == tarfile.DIRTYPE

    def isreg(self) -> bool:
        return self.type in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE)

    def issym(self) -> bool:
        return self.type == tarfile.SYMTYPE

    def islnk(self) -> bool:
        return self.type == tarfile.LNKTYPE

    def ischr(self) -> bool:
        return self.type == tarfile.CHRTYPE

    def isblk(self) -> bool:
        return self.type == tarfile.BLKTYPE

    def isfifo(self) -> bool:
        return self.type == tarfile.FIFOTYPE


class TarReader:
    """Entries of the tar read from `source`, in order: `next()` gives the next one (None at
    the end), `read(n)` the data of the current one (what `next()` leaves unread is
    skipped)."""

    def __init__(self, source: Source, what: str):
        self.source = source
        self.what = what
        self._left = 0   # data bytes of the current entry not yet read
        self._pad = 0    # padding after them
        self._global: dict[bytes, bytes] = {}
        self._buf: bytes | memoryview = b""  # read ahead from the source, from _off on
        self._off = 0

    # ------------------------------------------------------------------ raw reads

    def _fill(self) -> bool:
        """Read the source's next piece into the (empty) buffer; False at its end."""
        data = self.source.read(_CHUNK)
        self._buf, self._off = data, 0
        return bool(data)

    def _take(self, n: int) -> bytes | memoryview:
        """Up to n bytes from the buffer (refilled when empty); b"" at the stream's end."""
        if self._off >= len(self._buf) and not self._fill():
            return b""
        end = min(self._off + n, len(self._buf))
        if self._off == 0 and end == len(self._buf):
            out: bytes | memoryview = self._buf
        else:
            out = memoryview(self._buf)[self._off:end]
        self._off = end
        return out

    def _exact(self, n: int) -> bytes:
        """n bytes, or a LayerError for a stream that ends first."""
        parts = []
        have = 0
        while have < n:
            data = self._take(n - have)
            if not data:
                raise LayerError(f"{self.what}: truncated or corrupt layer (the tar ends "
                                 "inside an entry)")
            parts.append(bytes(data))
            have += len(data)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def read(self, n: int) -> bytes | memoryview:
        """Up to n bytes of the current entry's data (b"" when it is all read)."""
        n = min(n, self._left)
        if n <= 0:
            return b""
        data = self._take(n)
        if not data:
            raise LayerError(f"{self.what}: truncated or corrupt layer (the tar ends "
                             "inside an entry)")
        self._left -= len(data)
        return data

    def _skip(self) -> None:
        while self._left:
            self.read(min(self._left, _CHUNK))
        if self._pad:
            self._exact(self._pad)
            self._pad = 0

    def rest(self) -> None:
        """Read what follows the end of the archive (its zero blocks and padding)."""
        self._buf, self._off = b"", 0
        while self.source.read(_CHUNK):
            pass

    # ------------------------------------------------------------------ headers

    def next(self) -> Entry | None:
        """The next entry, None at the end of the archive (a zero block, or the stream's
        end right after an entry)."""
        self._skip()
        pax: dict[bytes, bytes] = {}
        longname: str | None = None
        longlink: str | None = None
        while True:
            head = self._head()
            if head is None or not head.strip(b"\0"):
                return None  # the end of the archive (a zero block)
            info = tarfile.TarInfo.frombuf(head, "utf-8", "surrogateescape")
            kind = info.type
            if kind in (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE):
                records = _pax_records(self._meta(info.size), self.what)
                if kind == tarfile.XGLTYPE:
                    self._global.update(records)
                else:
                    pax.update(records)
                continue
            if kind in (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK):
                text = self._meta(info.size).split(b"\0", 1)[0].decode("utf-8",
                                                                       "surrogateescape")
                if kind == tarfile.GNUTYPE_LONGNAME:
                    longname = text
                else:
                    longlink = text
                continue
            if kind == tarfile.GNUTYPE_SPARSE or any(k.startswith(b"GNU.sparse.")
                                                     for k in pax):
                raise LayerError(f"{self.what}: entry {info.name[:200]!r} is a GNU sparse file "
                                 "(not supported in image layers)", path=info.name)
            return self._entry(info, {**self._global, **pax}, longname, longlink)

    def _head(self) -> bytes | None:
        """The next header block; None when the stream ends exactly here."""
        if self._off >= len(self._buf) and not self._fill():
            return None
        return self._exact(BLOCK)

    def _meta(self, size: int) -> bytes:
        """The data of a PAX header or GNU long name (bounded), padding included."""
        if size > _MAX_META:
            raise LayerError(f"{self.what}: truncated or corrupt layer (an extended header "
                             f"of {size} bytes)")
        data = self._exact(size)
        pad = -size % BLOCK
        if pad:
            self._exact(pad)
        return data

    def _entry(self, info: tarfile.TarInfo, pax: dict[bytes, bytes], longname: str | None,
               longlink: str | None) -> Entry:
        name = longname if longname is not None else info.name
        linkname = longlink if longlink is not None else info.linkname
        size, uid, gid = info.size, info.uid, info.gid
        mtime_ns = int(info.mtime) * 1_000_000_000
        atime_ns: int | None = None
        xattrs: dict[str, bytes] = {}
        for key, value in pax.items():
            if key == b"path":
                name = value.decode("utf-8", "surrogateescape")
            elif key == b"linkpath":
                linkname = value.decode("utf-8", "surrogateescape")
            elif key in (b"size", b"uid", b"gid"):
                number = _int(value, key, self.what)
                if key == b"size":
                    size = number
                elif key == b"uid":
                    uid = number
                else:
                    gid = number
            elif key == b"mtime":
                mtime_ns = _ns(value, self.what)
            elif key == b"atime":
                atime_ns = _ns(value, self.what)
            elif key.startswith(b"SCHILY.xattr."):
                xattrs[key[len(b"SCHILY.xattr."):].decode("utf-8", "surrogateescape")] = value
        kind = info.type
        if kind == tarfile.AREGTYPE and name.endswith("/"):
            kind = tarfile.DIRTYPE
        if kind == tarfile.DIRTYPE:
            name = name.rstrip("/")
        if size < 0 or uid < 0 or gid < 0:
            raise LayerError(f"{self.what}: entry {name[:200]!r} has a negative size or owner",
                             path=name)
        has_data = kind in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE)
        self._left = size if has_data else 0
        self._pad = -size % BLOCK if has_data else 0
        if not has_data and size and kind not in (tarfile.DIRTYPE, tarfile.LNKTYPE,
                                                  tarfile.SYMTYPE, tarfile.CHRTYPE,
                                                  tarfile.BLKTYPE, tarfile.FIFOTYPE):
            self._left, self._pad = size, -size % BLOCK  # unknown type: skip what it holds
        return Entry(name, kind, info.mode & 0o7777, uid, gid, size if has_data else 0,
                     mtime_ns, atime_ns, linkname, info.devmajor, info.devminor, xattrs)


def _pax_records(data: bytes, what: str) -> dict[bytes, bytes]:
    """The records of a PAX header: "LEN key=value\\n" each."""
    out: dict[bytes, bytes] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            break
        try:
            length = int(data[pos:space])
        except ValueError:
            raise LayerError(f"{what}: truncated or corrupt layer (a bad PAX record)") from None
        end = pos + length
        if length <= 0 or end > len(data) or data[end - 1:end] != b"\n":
            raise LayerError(f"{what}: truncated or corrupt layer (a bad PAX record)")
        key, eq, value = data[space + 1:end - 1].partition(b"=")
        if not eq:
            raise LayerError(f"{what}: truncated or corrupt layer (a bad PAX record)")
        out[key] = value
        pos = end
    return out


def _int(value: bytes, key: bytes, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise LayerError(f"{what}: truncated or corrupt layer (PAX {key.decode()} "
                         f"{value[:40]!r})") from None


def _ns(value: bytes, what: str) -> int:
    """Nanoseconds of a PAX time ("1700000000.123456789")."""
    text = value.decode("ascii", "replace")
    sec, _, frac = text.partition(".")
    try:
        whole = int(sec)
        part = int((frac + "000000000")[:9]) if frac else 0
    except ValueError:
        raise LayerError(f"{what}: truncated or corrupt layer (PAX time {text[:40]!r})") from None
    return whole * 1_000_000_000 + (-part if sec.startswith("-") else part)
