"""The part of the snapshot store that holds layers from images: pulled layers are rows
that know their blob (digest, size, media type, diff_id) and where to read it, lazy until
something needs their content, then unpacked (Store._unpack) through a BlobOpener the
solver provides; and the blobs packed from layers for exports, remembered per layer. The
store knows no registry: an origin is opaque here. See docs/internals.md."""

from __future__ import annotations

import fcntl
import os
import threading
import time

from llb.fsutil import remove_tree
from llb.fsutil.locks import Mutex
from llb.snapshot.blobs import ORIGINAL, BlobOpener, BlobRecord
from llb.snapshot.db import MetaDB, Row
from llb.snapshot.errors import BlobRetryError, NotFoundError, SnapshotError
from llb.snapshot.index import Index, new_id
from llb.snapshot.layers import Change
from llb.snapshot.lock import Session

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Callable, Sequence


class ImageLayers:
    """Store's image-layer methods (Store derives from it; the attributes below are the
    store's own)."""

    db: MetaDB
    index: Index
    opener: BlobOpener | None
    session: Session
    snapshots_dir: str
    unpack_dir: str
    _lock: Mutex
    _state: threading.RLock
    _held: set[str]

    def _row(self, snapshot_id: str) -> Row:
        raise NotImplementedError

    def new_temp(self, prefix: str) -> Path:
        raise NotImplementedError

    def _apply_layer(self, sid: str, parent_id: str | None,
                     apply: Callable[[Path], None]) -> None:
        raise NotImplementedError

    def add_image_rows(self, parent: str | None, blobs: Sequence[BlobRecord], origin: str,
                       keep: Sequence[str] = ()) -> str | None:
        """Store.add_image_layers by snapshot id: the top layer's id (parent's when blobs
        is empty)."""
        below = parent
        kept = " ".join(keep)
        used: list[str] = []
        with self._lock.held():
            if below is not None:
                self._row(below)
            with self.db.transaction() as c:
                for rec in blobs:
                    found = self.db.pulled_layer(below, rec.digest)
                    if found is None:
                        found = new_id()
                        MetaDB.insert(c, found, "layer", below, time.time())
                        MetaDB.set_blob(c, found, ORIGINAL, BlobRecord(*rec))
                        c.execute("INSERT INTO pulled (id, origin, keep, lazy) "
                                  "VALUES (?,?,?,1)", (found, origin, kept))
                    below = found
                    used.append(found)
                with self._state:
                    new = [i for i in used if i not in self._held]
                MetaDB.hold(c, self.session.id, new)
            with self._state:
                self._held.update(new)
        return below

    def is_lazy(self, layer_id: str) -> bool:
        """True while a pulled layer's content is not unpacked."""
        return bool(self.index.lazy([layer_id]))

    def layer_blob(self, layer_id: str, variant: str = ORIGINAL) -> BlobRecord | None:
        """The blob a layer was pulled as (variant ""), or one packed from it earlier."""
        return self.db.blob(layer_id, variant)

    def set_layer_blob(self, layer_id: str, variant: str, rec: BlobRecord) -> None:
        """Remember a blob packed from a layer (variant: blobs.variant(compression, epoch))."""
        with self._lock.held():
            self._row(layer_id)
            with self.db.transaction() as c:
                MetaDB.set_blob(c, layer_id, variant, rec)

    def origin(self, layer_id: str) -> str | None:
        """Where a pulled layer's blob is read from (what add_image_layers was given)."""
        pulled = self.db.pulled(layer_id)
        return pulled[0] if pulled is not None else None

    def kept_digests(self) -> set[str]:
        """Every blob digest the snapshots still reference (their layer blobs, and the
        manifests and configs of the images they came from): what GC keeps."""
        return self.db.kept_digests()

    def _ensure_tree(self, sid: str) -> None:
        """Unpack the lazy layers sid's tree needs (nothing to look up once its whole chain
        is known to have content)."""
        needs = self.index.tree_needs(sid)
        if needs:
            self._ensure_content(needs)
        self.index.tree_solid(sid)

    def _ensure_content(self, ids: list[str]) -> None:
        """Unpack the lazy layers among ids (layers, bottom first), each after what it
        needs below it (its own chain: a prefix diff's chain lacks the layers under it).
        Their blobs are fetched in the background meanwhile, several at once."""
        todo: dict[str, None] = {}
        for lid in self.index.lazy(ids):
            for below in self.index.lazy(self.index.tree_chain(lid)):
                todo[below] = None
        if not todo:
            return
        if self.opener is not None and len(todo) > 1:
            by_origin: dict[str, list[BlobRecord]] = {}
            for sid in todo:
                pulled, rec = self.db.pulled(sid), self.db.blob(sid, ORIGINAL)
                if pulled is not None and rec is not None:
                    by_origin.setdefault(pulled[0], []).append(rec)
            for origin, recs in by_origin.items():
                self.opener.prefetch(origin, recs)
        for sid in todo:
            self._unpack(sid)

    def _publish_unpacked(self, sid: str, tmp: Path, changes: list[Change]) -> None:
        """Move an unpacked layer's directory into place and record its diff; a directory
        left there by an unpack killed before recording it is replaced."""
        with self._lock.held():
            final = os.path.join(self.snapshots_dir, sid)
            if os.path.exists(final):
                trash = self.new_temp("trash")
                os.rename(final, trash)
                remove_tree(trash)
            os.rename(tmp, final)
            try:
                with self.db.transaction() as c:
                    MetaDB.add_changes(c, sid, changes)
                    c.execute("UPDATE pulled SET lazy=0 WHERE id=?", (sid,))
            except BaseException:
                os.rename(final, tmp)
                raise

    def _unpack(self, sid: str) -> None:
        """Give lazy layer sid its content: its blob, read through the opener, applied on
        its parent's tree (Store._apply_layer). One process unpacks a layer at a time (a
        flock); the others wait and find it done. A read of the blob that turns out not to
        be the blob's (BlobRetryError: a corrupt stored copy, a restarted download) is
        started once more."""
        from llb.snapshot.layertar import unpack_layer  # tarfile and the compression libs

        row = self._row(sid)
        if row.parent is not None:  # first what it needs below (no lock held meanwhile)
            self._ensure_tree(row.parent)
        fd = os.open(os.path.join(self.unpack_dir, f"{sid}.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                     0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            pulled = self.db.pulled(sid)
            if pulled is None:
                raise NotFoundError(f"snapshot {sid} not found (unknown or removed)", path=sid)
            origin, _, lazy = pulled
            rec = self.db.blob(sid, ORIGINAL)
            opener = self.opener
            if lazy and (opener is None or rec is None):
                raise SnapshotError(f"layer {sid} of {origin} is not unpacked and this store "
                                    "has no way to read its blob", path=sid)
            if lazy and rec is not None and opener is not None:
                blob = rec

                def apply(dest: Path) -> None:
                    with opener.open(origin, blob) as raw:
                        unpack_layer(raw, dest, media_type=blob.media_type,
                                     diff_id=blob.diff_id,
                                     what=f"layer {blob.digest} of {origin}")

                for attempt in (1, 2):
                    try:
                        self._apply_layer(sid, row.parent, apply)
                        break
                    except BlobRetryError:
                        if attempt == 2:
                            raise
            self.index.solid.add(sid)
        finally:
            os.close(fd)
