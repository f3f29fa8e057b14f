"""Reading a blob while it is being stored: a download writes each piece into the content
store (hashing it) and hands the same piece to a BlobFollower, which a reader in another
thread consumes, so a layer is unpacked as it arrives instead of after (as containerd
streams a fetch into its applier). No byte is read or hashed twice.

The reader sees the end of the blob only once the download has checked the blob's digest
and size, and any failure of the download as an error of its next read. A writer that
starts again (a resumed download whose server ignored the range, a resumed partial that did
not verify) rewinds the follower: what it takes again up to what was already handed out is
hashed and must have the digest those bytes had, else the reader gets a
BlobChangedError (the bytes it has are not the blob's: its caller reads the blob again from
the start). A blob some other writer stored meanwhile is read from the store.

A reader that fails on the bytes before their end (a corrupt layer?) cannot tell bad bytes
from a bad blob: `drain` lets the download run to its end without it and says whether the
bytes it had were the blob's (a resumed partial download is bytes no one checked)."""

from __future__ import annotations

import io
import threading
from collections import deque
from typing import TYPE_CHECKING

from llb.content.digest import Digester
from llb.content.errors import BlobChangedError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

    from llb.content.store import ContentStore

DEFAULT_LIMIT = 8 << 20  # bytes handed over but not yet read, at most (the writer waits)


class BlobFollower:
    """The bytes of one blob (digest, size) as an Ingest takes them: the ingest's tap on
    one side (`data`, `rewind`, `verified`; the download's thread calls `finish` or `fail`
    when it returns), a binary reader on the other (`read`, `readinto`, `close`)."""

    read_ahead = False  # fed by a thread of its own: an unpacker reads it directly

    def __init__(self, store: ContentStore, digest: str, size: int, *,
                 limit: int = DEFAULT_LIMIT):
        self.store = store
        self.digest = digest
        self.size = size
        self.limit = limit
        self.from_store = False   # the bytes are read from the stored blob (not checked again)
        self._cond = threading.Condition()
        self._pieces: deque[bytes | memoryview] = deque()
        self._queued = 0          # bytes in _pieces
        self._delivered = 0       # bytes handed over (queued or read)
        self._taken = 0           # bytes the writer passed since it last started
        self._draining = False    # the reader left but waits for the download's end
        self._verified = False    # the download checked the digest of what it took
        self._changed = False     # the bytes taken again after a rewind were other ones
        self._ended = False       # the digest is checked: after the queue, the end
        self._error: BaseException | None = None
        self._closed = False      # the reader is gone: the writer's calls return at once
        self._settled = threading.Event()  # the writer returned (finish or fail)
        self._late: BaseException | None = None  # what it failed with after the end
        self._recheck: tuple[str, int, Digester] | None = None  # after a rewind
        self._file: io.FileIO | None = None  # the stored blob, when read from the store
        self._piece: bytes | memoryview = b""
        self._off = 0

    # ------------------------------------------------------------------ the writer's side

    def data(self, piece: bytes | memoryview) -> None:
        """Hand the next bytes over (waiting while `limit` bytes are unread)."""
        if isinstance(piece, memoryview) and not piece.readonly:
            piece = bytes(piece)  # the writer may fill its buffer again
        if self._recheck is not None:
            piece = self._catch_up(piece)
            if not piece:
                return
        self._taken += len(piece)
        with self._cond:
            while self._queued >= self.limit and not self._closed:
                self._cond.wait()
            if self._closed or self._error is not None:
                return
            self._pieces.append(piece)
            self._queued += len(piece)
            self._delivered += len(piece)
            self._cond.notify_all()

    def _catch_up(self, piece: bytes | memoryview) -> bytes | memoryview:
        """After a rewind: hash the bytes taken again up to what was handed out; the rest
        of the piece once they match (BlobChangedError for the reader if not)."""
        assert self._recheck is not None
        digest, size, hasher = self._recheck
        need = size - hasher.size
        hasher.update(piece[:need])
        self._taken += min(need, len(piece))
        if hasher.size < size:
            return b""
        self._recheck = None
        if hasher.digest() != digest:
            with self._cond:
                self._changed = True
                self._fail_locked(BlobChangedError(
                    f"blob {self.digest}: its download started again and sent other bytes "
                    "than the first time"))
        return piece[need:]  # (data() hands nothing more over after a failure)

    def rewind(self, digest: str, size: int) -> None:
        """The writer starts again from byte 0 (see the module docstring)."""
        with self._cond:
            if self._recheck is not None and size == self._taken:
                # again before it caught up: the same first bytes are checked from byte 0
                self._recheck = (self._recheck[0], self._recheck[1], Digester())
                self._taken = 0
                return
            if size != self._taken:
                # (never expected: the writer tells of every byte; whatever was handed out
                # cannot be checked)
                self._changed = True
                self._fail_locked(BlobChangedError(
                    f"blob {self.digest}: its download started again after {size} bytes, "
                    f"{self._taken} of which were told"))
                return
            self._taken = 0
            self._recheck = (digest, size, Digester())

    def verified(self) -> None:
        """The digest and size matched: the reader gets the end after what is queued."""
        with self._cond:
            if self._recheck is not None or self._taken != self.size:
                self._changed = True
                self._fail_locked(BlobChangedError(
                    f"blob {self.digest}: verified, but {self._taken} of its "
                    f"{self.size} bytes were told"))
                return
            self._verified = True
            self._ended = True
            self._cond.notify_all()

    def finish(self) -> None:
        """The download returned: if nothing was handed out, another writer stored the
        blob, and it is read from the store from here on."""
        with self._cond:
            self._settled.set()
            if self._ended or self._error is not None or self._closed:
                return
            if self._delivered or self._recheck is not None:
                self._fail_locked(BlobChangedError(
                    f"blob {self.digest}: stored by another writer after {self._delivered} "
                    "bytes of it were read"))
                return
            try:
                self._file = self.store.open_unverified(self.digest, self.size)
            except BaseException as e:  # noqa: BLE001 - the reader raises it
                self._fail_locked(e)
                return
            self.from_store = True
            self._ended = True
            self._cond.notify_all()

    def fail(self, error: BaseException) -> None:
        """The download failed: the reader's next read raises `error` (or `stored`, when
        the failure came after the end: publishing the verified blob)."""
        with self._cond:
            if self._ended:
                self._late = error
            self._fail_locked(error)
            self._settled.set()

    def stored(self) -> None:
        """Wait for the writer to return after the reader got the end: raises what it
        failed with meanwhile (the blob's fsync or rename: a full disk)."""
        self._settled.wait()
        if self._late is not None:
            raise self._late

    def _fail_locked(self, error: BaseException) -> None:
        if self._error is None and not self._ended:
            self._error = error
        self._cond.notify_all()

    def drain(self) -> bool:
        """The reader gives up before the end but lets the download run on without it and
        waits for it: True when the download verified the blob, so the bytes handed out
        were the blob's; False when some were not (the download started again with other
        bytes, or another writer stored the blob). Raises what the download failed with."""
        with self._cond:
            self._draining = True
            self._close_locked()
        self._settled.wait()
        if self._changed:
            return False
        if self._verified:
            if self._late is not None:
                raise self._late
            return True
        if self._error is not None:
            raise self._error
        return False  # another writer stored it: what was handed out was never checked

    @property
    def ended(self) -> bool:
        """True once the blob was verified (or found stored)."""
        return self._ended

    @property
    def abandoned(self) -> bool:
        """True when the reader left before the end (the download may stop), unless it
        waits for the download to end (`drain`)."""
        return self._closed and not self._ended and not self._draining

    # ------------------------------------------------------------------ the reader's side

    def read(self, size: int = -1) -> bytes | memoryview:
        """Up to `size` bytes (what one piece holds at most); b"" at the verified end."""
        if self._off >= len(self._piece) and not self._next():
            return b""
        end = len(self._piece) if size < 0 else min(len(self._piece), self._off + size)
        if self._off == 0 and end == len(self._piece):
            out = self._piece
        else:
            out = memoryview(self._piece)[self._off:end]
        self._off = end
        return out

    def readinto(self, buffer: WriteableBuffer) -> int:
        """Copy up to len(buffer) bytes into buffer; 0 at the verified end."""
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        n = len(data)
        view[:n] = data
        return n

    def _next(self) -> bool:
        """The next piece into _piece; False at the end. Raises what the writer failed
        with."""
        with self._cond:
            while not self._pieces and not self._ended and self._error is None:
                self._cond.wait()
            if self._error is not None:
                raise self._error
            if self._pieces:
                self._piece, self._off = self._pieces.popleft(), 0
                self._queued -= len(self._piece)
                self._cond.notify_all()
                return True
        if self._file is not None:
            piece = self._file.read(1 << 20)
            if piece:
                self._piece, self._off = piece, 0
                return True
        return False

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        """The reader is done (or gave up): the writer's calls return at once from now on."""
        with self._cond:
            self._close_locked()
        if self._file is not None:
            self._file.close()
            self._file = None

    def _close_locked(self) -> None:
        self._closed = True
        self._pieces.clear()
        self._queued = 0
        self._cond.notify_all()
