"""Reading a blob verified as it is read: the bytes are hashed on the way through and, at
the end, must match the digest and size that name them (DigestMismatchError otherwise).
Used for the content store's blobs and for blobs read out of OCI layouts."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Callable, Protocol

from llb.content.digest import Digester
from llb.content.errors import DigestMismatchError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

class RawSource(Protocol):
    """What a BlobReader reads from: an open binary file (or a member of a tar)."""

    def readinto(self, buffer: "WriteableBuffer", /) -> int | None: ...

    def close(self) -> None: ...


class BlobReader(io.RawIOBase):
    """A blob opened for reading, `size` bytes long, checked against `digest` when the end
    is reached; `on_mismatch` runs first when the check fails (e.g. to drop a bad blob)."""

    def __init__(self, raw: RawSource, digest: str, size: int, what: str,
                 on_mismatch: Callable[[], None] | None = None):
        super().__init__()
        self._raw = raw
        self._digest = digest
        self._what = what
        self._on_mismatch = on_mismatch
        self._hash = Digester()
        self.size = size
        self._checked = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: "WriteableBuffer") -> int:
        n = self._raw.readinto(buffer) or 0
        if n:
            self._hash.update(memoryview(buffer)[:n])
            if self._hash.size > self.size:
                self._fail()
        elif not self._checked:
            self._checked = True
            try:
                self._hash.check(self._digest, self.size, self._what)
            except DigestMismatchError:
                if self._on_mismatch is not None:
                    self._on_mismatch()
                raise
        return n

    def readall(self) -> bytes:
        """The rest of the blob, read into one buffer of the size it must have, then
        checked (one more read must find the end)."""
        buf = bytearray(max(self.size - self._hash.size, 0))
        view = memoryview(buf)
        got = 0
        while got < len(buf):
            n = self.readinto(view[got:])
            if not n:
                break
            got += n
        view.release()
        self.readinto(bytearray(1))  # the end: verifies (or finds bytes past the size)
        return bytes(buf) if got == len(buf) else bytes(buf[:got])

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()

    def _fail(self) -> None:
        if self._on_mismatch is not None:
            self._on_mismatch()
        raise DigestMismatchError(f"{self._what}: size mismatch: more than {self.size} bytes")
