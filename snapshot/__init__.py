"""snapshot: everything on disk. The store (overlayfs and native snapshotters), recorded
diffs and layer chains, merges, and safe path resolution (docs/internals.md)."""

from snapshot.errors import NotFoundError, PathEscapeError, SnapshotError
from snapshot.layers import Change, Layer
from snapshot.paths import resolve_in_root
from snapshot.store import Mutable, Ref, Store

__all__ = [
    "Change", "Layer", "Mutable", "NotFoundError", "PathEscapeError", "Ref", "SnapshotError",
    "Store", "resolve_in_root",
]
