"""snapshot: everything on disk. The store (overlayfs and native snapshotters), recorded
diffs and layer chains, merges, and safe path resolution (docs/internals.md)."""

from llb.snapshot.errors import NotFoundError, PathEscapeError, SnapshotError
from llb.snapshot.layers import Change, Layer
from llb.snapshot.paths import resolve_in_root
from llb.snapshot.store import Mutable, Ref, Store

__all__ = [
    "Change", "Layer", "Mutable", "NotFoundError", "PathEscapeError", "Ref", "SnapshotError",
    "Store", "resolve_in_root",
]
