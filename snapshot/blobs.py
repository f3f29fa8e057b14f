"""What the store remembers of a layer's blob (the one it was pulled as, and those packed
from it for exports), and what it asks of whoever can read a pulled blob: the store knows
no registry, the solver hands it a BlobOpener."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Callable, NamedTuple, Protocol, Sequence


ORIGINAL = ""  # the variant of the blob a layer was pulled as


class Reader(Protocol):
    """A readable binary stream (a blob's bytes)."""

    def read(self, size: int = -1, /) -> bytes: ...


class BlobRecord(NamedTuple):
    """A layer blob: its digest and size as stored (compressed), its media type, and the
    digest of its uncompressed tar (the image config's diff_id)."""

    digest: str
    size: int
    media_type: str
    diff_id: str


class BlobOpener(Protocol):
    """Reads pulled blobs for the store (the solver's image sources provide it)."""

    def open(self, origin: str, blob: BlobRecord) -> AbstractContextManager[Reader]:
        """The blob's bytes as stored (compressed), fetched from `origin` if need be,
        verified against its digest and size when read to the end."""

    def fetch(self, origin: str, blobs: Sequence[BlobRecord],
              progress: Callable[[str, int, int], None] | None = None) -> None:
        """Make sure the blobs are in the content store (no unpacking)."""

    def prefetch(self, origin: str, blobs: Sequence[BlobRecord]) -> None:
        """Start fetching the blobs in the background (the store is about to unpack them in
        order; `open` waits for a blob being fetched). Failures surface in `open`."""


def variant(compression: str, epoch: int | None) -> str:
    """The variant name of a packed blob: its compression, and the epoch it was clamped to."""
    return compression if epoch is None else f"{compression}@{epoch}"
