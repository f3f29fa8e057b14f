"""Compression of layer blobs, streamed both ways (a layer is never held in memory): gzip
through python-isal (ISA-L's igzip, several times zlib's speed), zstd through zstandard,
or none. What a blob is compressed with is told by its media type and checked against the
magic bytes it starts with."""

from __future__ import annotations

from typing import IO, Callable, Protocol, cast

from llb.snapshot.errors import LayerError

KINDS = ("uncompressed", "gzip", "zstd")
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_CHUNK = 1 << 20
GZIP_DEFAULT_LEVEL = 1  # isal's levels are 0-3; 1 compresses like `gzip -2` at many times its speed
ZSTD_DEFAULT_LEVEL = 3


class Reader(Protocol):
    """A readable binary stream."""

    def read(self, size: int = -1, /) -> bytes: ...


def kind_of(media_type: str) -> str:
    """The compression a layer media type names: "+gzip"/".gzip" suffixes are gzip,
    "+zstd"/".zstd" zstd, anything else an uncompressed tar."""
    if media_type.endswith(("+gzip", ".gzip")):
        return "gzip"
    if media_type.endswith(("+zstd", ".zstd")):
        return "zstd"
    return "uncompressed"


def sniff(head: bytes) -> str:
    """What the first bytes of a blob look like: "gzip", "zstd" or "uncompressed"."""
    if head.startswith(_GZIP_MAGIC):
        return "gzip"
    if head.startswith(_ZSTD_MAGIC):
        return "zstd"
    return "uncompressed"


class _Prefixed:
    """A stream whose first bytes were already read (to check its magic)."""

    def __init__(self, head: bytes, raw: Reader):
        self._head = head
        self._raw = raw

    def read(self, size: int = -1) -> bytes:
        if self._head:
            if size < 0 or size >= len(self._head):
                head, self._head = self._head, b""
                if size < 0:
                    return head + self._raw.read()
                return head + (self._raw.read(size - len(head)) if size > len(head) else b"")
            head, self._head = self._head[:size], self._head[size:]
            return head
        return self._raw.read(size)

    def readinto(self, buffer: bytearray | memoryview) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True


def decompressed(raw: Reader, kind: str, what: str) -> Reader:
    """The uncompressed bytes of the blob `raw` compressed with `kind`; LayerError when its
    magic says otherwise. Truncated or corrupt data raises as it is read."""
    head = raw.read(4)
    found = sniff(head)
    if found != kind:
        raise LayerError(f"{what}: its media type says {kind} but the data is "
                         f"{'not compressed' if found == 'uncompressed' else found}")
    stream = _Prefixed(head, raw)
    if kind == "gzip":
        from isal import igzip

        return igzip.IGzipFile(fileobj=stream, mode="rb")
    if kind == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(
            cast(IO[bytes], stream), read_size=_CHUNK, read_across_frames=True, closefd=False)
    return stream


class Compressor:
    """Compresses what is written to it into `sink`; `close()` writes the end."""

    def __init__(self, kind: str, level: int | None, sink: Callable[[bytes], object]):
        if kind not in KINDS:
            raise ValueError(f"unknown compression {kind!r} (use {', '.join(KINDS)})")
        self.kind = kind
        self._sink = sink
        self._obj: _Compressobj | None = None
        if kind == "gzip":
            from isal import isal_zlib

            lvl = GZIP_DEFAULT_LEVEL if level is None else max(0, min(level, 3))
            # wbits 31: a gzip member whose header carries no name and mtime 0
            self._obj = isal_zlib.compressobj(lvl, isal_zlib.DEFLATED, 31)
        elif kind == "zstd":
            import zstandard

            lvl = ZSTD_DEFAULT_LEVEL if level is None else max(1, min(level, 22))
            self._obj = zstandard.ZstdCompressor(level=lvl).compressobj()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._obj is None:
            self._sink(bytes(data))
            return
        out = self._obj.compress(data)
        if out:
            self._sink(out)

    def close(self) -> None:
        if self._obj is not None:
            out = self._obj.flush()
            if out:
                self._sink(out)
            self._obj = None


class _Compressobj(Protocol):
    def compress(self, data: bytes | bytearray | memoryview, /) -> bytes: ...
    def flush(self) -> bytes: ...


def compressor(kind: str, level: int | None, sink: Callable[[bytes], object]) -> Compressor:
    """A streaming compressor of `kind` ("gzip", "zstd", "uncompressed") writing to sink.
    level: gzip 0-3 (isal's levels; higher asks are its best, 3), zstd 1-22; None: a fast
    default (gzip 1, zstd 3)."""
    return Compressor(kind, level, sink)
