"""Typed errors of the snapshot store: every one is an LLBError carrying the path or
snapshot involved, so the CLI prints one line."""

from __future__ import annotations

from llb.errors import LLBError


class SnapshotError(LLBError):
    """Something went wrong in the snapshot store (bad state, busy snapshot, mount failure)."""


class NotFoundError(SnapshotError):
    """A snapshot id is unknown or was removed."""


class PathEscapeError(SnapshotError):
    """A path would resolve outside the root it must stay in."""


class LayerError(SnapshotError):
    """A layer blob cannot be applied: hostile or broken tar content (an entry leaving the
    root, a duplicate, a truncated or corrupt stream, a diff_id that does not match). Bad
    input: the image is at fault, not the build."""


class BlobRetryError(SnapshotError):
    """Raised through a BlobOpener's reader: the bytes read were not the blob's after all
    (a corrupt stored copy, now removed; a download that started again with other bytes).
    The store unpacks the layer once more from the start, with a fresh read of the blob."""

    exit_code = 1
