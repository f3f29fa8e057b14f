"""What the store remembers of a layer's blob (the one it was pulled as, and those packed
from it for exports), and what it asks of whoever can read a pulled blob: the store knows
no registry, the solver hands it a BlobOpener."""

from __future__ import annotations

from contextlib import AbstractContextManager
from llb.records import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from typing import Callable, Protocol, Sequence
else:  # a protocol is a plain base class at run time (nothing checks one then)
    Protocol = object

ORIGINAL = ""  # the variant of the blob a layer was pulled as


class Reader(Protocol):
    """A readable binary stream (a blob's bytes). A reader may hand out memoryviews; one fed
    by a thread of its own says so with `read_ahead = False` (an unpacker then reads it
    directly rather than through a read-ahead thread)."""

    def read(self, size: int = -1, /) -> bytes | memoryview: ...


class BlobRecord(Record):
    """A layer blob: its digest and size as stored (compressed), its media type, and the
    digest of its uncompressed tar (the image config's diff_id)."""

    digest: str
    size: int
    media_type: str
    diff_id: str


class BlobOpener(Protocol):
    """Reads pulled blobs for the store (the solver's image sources provide it)."""

    def open(self, origin: str, blob: BlobRecord) -> AbstractContextManager[Reader]:
        """The blob's bytes as stored (compressed), from the content store or as they are
        downloaded from `origin`: a download is verified against the blob's digest and
        size when read to the end; a stored copy may be read without hashing it again (the
        unpacker checks the diff_id), and when the block fails with a LayerError the
        opener checks the stored copy: a corrupt one is removed and BlobRetryError raised
        instead (the store unpacks again)."""

    def fetch(self, origin: str, blobs: Sequence[BlobRecord],
              progress: Callable[[str, int, int], None] | None = None) -> None:
        """Make sure the blobs are in the content store (no unpacking)."""

    def prefetch(self, origin: str, blobs: Sequence[BlobRecord]) -> None:
        """Start fetching the blobs in the background (the store is about to unpack them in
        order; `open` waits for a blob being fetched). Failures surface in `open`."""


def variant(compression: str, epoch: int | None) -> str:
    """The variant name of a packed blob: its compression, and the epoch it was clamped to."""
    return compression if epoch is None else f"{compression}@{epoch}"
