"""A small stand-in for the layer packing's `layer_blobs` (owned by the layer side of the
images work), for the image exporter tests until the real one lands: each layer of a ref's
chain becomes a tar of its recorded changes (deletions as `.wh.NAME`), compressed with the
stdlib's gzip (mtime 0) or zstandard, stored in the content store and remembered per
(layer, compression). Deterministic: entries sorted, numeric owners, times clamped to the
epoch when one is given."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
from typing import Any, Callable, NamedTuple

from llb.content import mediatypes as mt
from llb.content.descriptor import Descriptor
from llb.content.store import ContentStore

_MEMO: dict[tuple[str, str, str, int | None, int | None], tuple[Descriptor, str]] = {}
CALLS: list[str] = []  # layer ids packed (not found in the memo)


class StandInBlob(NamedTuple):
    """As llb.solver.layerblobs.LayerBlob."""

    layer_id: str
    digest: str
    size: int
    media_type: str
    diff_id: str
    source: str | None = None

    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, self.size)


def layer_tar(layer: Any, epoch: int | None) -> bytes:
    buf = io.BytesIO()
    changes = {c.path: c.kind for c in layer.changes()}
    for rel in list(changes):  # parent directories of every change, as BuildKit writes them
        parts = rel.split("/")
        for i in range(1, len(parts)):
            changes.setdefault("/".join(parts[:i]), "parent")
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel in sorted(changes, key=lambda p: p.split("/")):
            if changes[rel] == "delete":
                parent, _, name = rel.rpartition("/")
                info = tarfile.TarInfo(f"{parent}/.wh.{name}" if parent else f".wh.{name}")
                info.mtime, info.mode = epoch or 0, 0
                tar.addfile(info)
                continue
            path = str(layer.path(rel))
            st = os.lstat(path)
            info = tarfile.TarInfo(rel)
            info.mode = stat.S_IMODE(st.st_mode)
            info.uid, info.gid, info.uname, info.gname = st.st_uid, st.st_gid, "", ""
            info.mtime = int(st.st_mtime) if epoch is None else min(int(st.st_mtime), epoch)
            if stat.S_ISDIR(st.st_mode):
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif stat.S_ISLNK(st.st_mode):
                info.type, info.linkname = tarfile.SYMTYPE, os.readlink(path)
                tar.addfile(info)
            elif stat.S_ISREG(st.st_mode):
                info.size = st.st_size
                with open(path, "rb") as f:
                    tar.addfile(info, f)
    return buf.getvalue()


def layer_blobs(store: Any, content: ContentStore, ref: Any, *, compression: str = "gzip",
                level: int | None = None, epoch: int | None = None,
                progress: Callable[[str, int, int], None] | None = None) -> list[StandInBlob]:
    out = []
    for layer in ref.layer_chain() if ref is not None else []:
        key = (str(content.dir), layer.id, compression, level, epoch)
        if key not in _MEMO:
            CALLS.append(layer.id)
            tar = layer_tar(layer, epoch)
            diff_id = "sha256:" + hashlib.sha256(tar).hexdigest()
            if compression == "gzip":
                blob = gzip.compress(tar, compresslevel=6 if level is None else level, mtime=0)
            elif compression == "zstd":
                import zstandard

                blob = zstandard.ZstdCompressor(level=3 if level is None else level).compress(tar)
            else:
                blob = tar
            info = content.put(blob)
            _MEMO[key] = (Descriptor(mt.layer_media_type(compression), info.digest, info.size),
                          diff_id)
        desc, diff_id = _MEMO[key]
        if progress is not None:
            progress(desc.digest, desc.size, desc.size)
        out.append(StandInBlob(layer.id, desc.digest, desc.size, desc.media_type, diff_id))
    return out


def install(monkeypatch: Any) -> None:
    """Make the image exporters use this stand-in."""
    from llb.solver.exporters import images

    monkeypatch.setattr(images, "layer_blobs", layer_blobs)
