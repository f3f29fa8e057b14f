"""Compression of layer blobs, streamed both ways (a layer is never held in memory): gzip
through python-isal (ISA-L's igzip, several times zlib's speed), zstd through zstandard,
or none. What a blob is compressed with is told by its media type and checked against the
magic bytes it starts with."""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from typing import IO, Callable, Protocol, cast

from llb.snapshot.blobs import Reader
from llb.snapshot.errors import LayerError

KINDS = ("uncompressed", "gzip", "zstd")
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_CHUNK = 1 << 20
GZIP_DEFAULT_LEVEL = 1  # isal's levels are 0-3; 1 compresses like `gzip -2` at many times its speed
ZSTD_DEFAULT_LEVEL = 3


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
                    return head + bytes(self._raw.read())
                return head + (bytes(self._raw.read(size - len(head)))
                               if size > len(head) else b"")
            head, self._head = self._head[:size], self._head[size:]
            return head
        return bytes(self._raw.read(size))

    def readinto(self, buffer: bytearray | memoryview) -> int:
        data = self._raw.read(len(buffer)) if not self._head else self.read(len(buffer))
        n = len(data)
        buffer[:n] = data  # the one copy: from the piece read into the decompressor's buffer
        return n

    def readable(self) -> bool:
        return True


def decompressed(raw: Reader, kind: str, what: str) -> Reader:
    """The uncompressed bytes of the blob `raw` compressed with `kind`; LayerError when its
    magic says otherwise. Truncated or corrupt data raises as it is read."""
    head = b""
    while len(head) < 4:
        more = raw.read(4 - len(head))
        if not more:
            break
        head += bytes(more)
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


class _Ahead:
    """Reads `source` in a background thread into a bounded queue of pieces (several MiB at
    most in flight); `read` hands them out in order and raises, in the reader's thread,
    what the background read raised. Reading raw blobs (hashed to verify them) and
    decompressing (isal and zstd release the GIL) then overlap with what consumes them."""

    _DEPTH = 8  # pieces of up to _CHUNK bytes in flight

    def __init__(self, source: Reader, name: str):
        self._source = source
        self._queue: queue.Queue[bytes | memoryview | BaseException | None] = \
            queue.Queue(self._DEPTH)
        self._stop = threading.Event()
        self._piece: bytes | memoryview = b""
        self._off = 0
        self._done = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        try:
            self._thread.start()
        except BaseException:  # a signal's KeyboardInterrupt out of start(): the thread
            self._stop.set()  # may run, and must not go on reading for nobody
            raise

    def _put(self, item: bytes | memoryview | BaseException | None) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                data = self._source.read(_CHUNK)
                if not data:
                    break
                if not self._put(data):
                    return
            self._put(None)
        except BaseException as e:  # noqa: BLE001 - raised in the reader's thread
            self._put(e)

    def read(self, size: int = -1) -> bytes | memoryview:
        """Up to `size` bytes (the rest of the current piece at most; a view of it, not a
        copy); b"" at the end."""
        if self._off >= len(self._piece):
            if self._done:
                return b""
            item = self._queue.get()
            if isinstance(item, BaseException):
                self._done = True
                raise item
            if item is None:
                self._done = True
                return b""
            self._piece, self._off = item, 0
        end = len(self._piece) if size < 0 else min(len(self._piece), self._off + size)
        out: bytes | memoryview = self._piece
        if self._off or end < len(self._piece):
            out = memoryview(self._piece)[self._off:end]
        self._off = end
        return out

    def close(self) -> None:
        """Stop the thread (a reader that gave up early) and wait for it."""
        self._stop.set()
        self._thread.join()


class Pipe:
    """The uncompressed bytes of a blob for an unpacker, in a pipeline of threads: one reads
    the blob (unless its reader says it is fed by a thread of its own, `read_ahead =
    False`: a download being stored), one decompresses it, and the reader's own thread
    hashes what it takes (the layer's diff_id) and writes it out; bounded queues in
    between keep memory to a few MiB. An error in a stage is raised by the next `read`.
    With a single CPU to run on, the stages run in the reader's thread instead (threads
    would only take turns)."""

    def __init__(self, raw: Reader, kind: str, what: str):
        threaded = _cpus() > 1
        self._raw: Reader | _Ahead = raw
        self._ahead: list[_Ahead] = []
        if threaded and getattr(raw, "read_ahead", True):
            self._raw = self._start(raw, "llb-blob-read")
        try:
            out = decompressed(self._raw, kind, what)
            self._out = self._start(out, "llb-decompress") if threaded else out
        except BaseException:
            self.close()
            raise
        self._hash = hashlib.sha256()

    def _start(self, source: Reader, name: str) -> _Ahead:
        ahead = _Ahead(source, name)
        self._ahead.append(ahead)
        return ahead

    def read(self, size: int = -1) -> bytes | memoryview:
        data = self._out.read(size)
        self._hash.update(data)
        return data

    def diff_id(self) -> str:
        """The sha256 of all the uncompressed bytes, read to their end here, and the blob
        read to its end (its digest checked)."""
        while self.read(_CHUNK):
            pass
        while self._raw.read(_CHUNK):
            pass
        return "sha256:" + self._hash.hexdigest()

    def close(self) -> None:
        """Stop the threads and wait for them."""
        for ahead in reversed(self._ahead):
            ahead.close()


def _cpus() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


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
