"""The bridge between layer chains and blobs, for exporters: one blob per layer of a ref's
chain, in order. A layer pulled from an image keeps the blob it came as (nothing is
downloaded to name it); a layer llb built is packed and compressed once per (layer,
compression, epoch), streamed into the content store and remembered in the snapshot DB, so
a second export costs no compression. Contract: docs/internals.md."""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from typing import Callable, NamedTuple, Sequence

from llb.content import mediatypes as mt
from llb.content.descriptor import Descriptor
from llb.content.store import ContentStore
from llb.snapshot import Ref, Store
from llb.snapshot.blobs import ORIGINAL, BlobRecord, variant
from llb.snapshot.compression import KINDS, compressor
from llb.snapshot.layerpack import pack_layer
from llb.snapshot.layers import Layer
from llb.ops import SCHEME_IMAGE
from llb.solver.errors import ExportError
from llb.solver.puller import Origin

Progress = Callable[[str, int, int], None]


class LayerBlob(NamedTuple):
    """The blob of one layer: digest and size as stored, media type, diff_id (sha256 of the
    uncompressed tar), and for a pulled layer the repository it came from
    ("REGISTRY/REPOSITORY", for a cross-repository mount when pushing) or None."""

    layer_id: str
    digest: str
    size: int
    media_type: str
    diff_id: str
    source: str | None = None

    def descriptor(self) -> Descriptor:
        """The OCI descriptor naming this blob."""
        return Descriptor(self.media_type, self.digest, self.size)


def layer_blobs(store: Store, content: ContentStore, ref: Ref | None, *,
                compression: str = "gzip", level: int | None = None,
                epoch: int | None = None, progress: Progress | None = None) -> list[LayerBlob]:
    """One LayerBlob per layer of ref's chain, bottom first ([] for scratch). Packed blobs
    are written to `content` (leased by its session) and remembered per layer,
    compression and epoch; a pulled layer's blob is named, not downloaded (fetch_blobs)."""
    if compression not in KINDS:
        raise ExportError(f"compression={compression}: unknown (use {', '.join(KINDS)})")
    if ref is None:
        return []
    out: list[LayerBlob] = []
    wanted = variant(compression, epoch)
    for layer in ref.layer_chain():
        pulled = store.layer_blob(layer.id, ORIGINAL)
        if pulled is not None:
            out.append(LayerBlob(layer.id, *pulled, source=_repository(store.origin(layer.id))))
            continue
        rec = store.layer_blob(layer.id, wanted)
        if rec is None or not content.exists(rec.digest):
            rec = _pack(layer, content, compression, level, epoch, progress)
            store.set_layer_blob(layer.id, wanted, rec)
        else:
            content.lease(rec.digest, content.session_holder)
        out.append(LayerBlob(layer.id, *rec))
    return out


def fetch_blobs(store: Store, content: ContentStore, blobs: Sequence[LayerBlob], *,
                progress: Progress | None = None,
                cancelled: threading.Event | None = None) -> None:
    """Make sure every blob's bytes are in the content store: a pulled one missing there is
    fetched from where it came from (through the store's opener), nothing is unpacked."""
    missing: dict[str, list[BlobRecord]] = {}
    for b in blobs:
        if content.exists(b.digest):
            content.lease(b.digest, content.session_holder)
            continue
        origin = store.origin(b.layer_id)
        if origin is None:
            raise ExportError(f"blob {b.digest} of layer {b.layer_id} is not in the content "
                              "store and has no origin to fetch it from")
        missing.setdefault(origin, []).append(BlobRecord(b.digest, b.size, b.media_type,
                                                         b.diff_id))
    if not missing:
        return
    if store.opener is None:
        raise ExportError("pulled blobs are missing and this store has no way to fetch them")
    for origin, recs in missing.items():
        store.opener.fetch(origin, recs, progress)


def _pack(layer: Layer, content: ContentStore, compression: str, level: int | None,
          epoch: int | None, progress: Progress | None) -> BlobRecord:
    """Pack, hash and compress one layer into the content store in one stream. Progress
    counts the bytes of file content packed, against their total, to the end."""
    diff = hashlib.sha256()
    key = f"layer:{layer.id}"
    report: Callable[[int], None] | None = None
    total = 0
    if progress is not None:
        total = _content_bytes(layer)
        progress(key, 0, total)
        report = lambda n: progress(key, min(n, total), total)  # noqa: E731
    with content.writer() as w:
        comp = compressor(compression, level, w.write)

        def sink(data: bytes) -> None:
            diff.update(data)
            comp.write(data)

        pack_layer(layer, sink, epoch=epoch, progress=report)
        comp.close()
        info = w.commit()
    if progress is not None:
        progress(key, total, total)
    return BlobRecord(info.digest, info.size, mt.layer_media_type(compression),
                      "sha256:" + diff.hexdigest())


def _content_bytes(layer: Layer) -> int:
    """The bytes of the regular files a layer adds or modifies (what packing it reads)."""
    total = 0
    for change in layer.changes():
        if change.kind != "delete":
            st = os.lstat(layer.path(change.path))
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
    return total


def _repository(origin: str | None) -> str | None:
    """"REGISTRY/REPOSITORY" a layer was pulled from (None: built, or from a layout)."""
    if origin is None:
        return None
    where = Origin.parse(origin)
    return where.location if where.scheme == SCHEME_IMAGE else None
