"""Layer blobs for snapshot tests: pack a layer into a blob, write hand-made (hostile) layer
tars, and a small BlobOpener serving blobs from memory that counts what it opened (in a
file, so openings in other processes count too)."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import tarfile
from pathlib import Path
from typing import Iterator, Sequence

import zstandard

from llb.snapshot import Layer, Ref, Store
from llb.snapshot.blobs import BlobRecord
from llb.snapshot.compression import compressor
from llb.snapshot.layerpack import pack_layer

MEDIA = {"gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
         "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
         "uncompressed": "application/vnd.oci.image.layer.v1.tar"}


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def pack(layer: Layer, compression: str = "gzip", epoch: int | None = None) -> tuple[bytes, bytes]:
    """(tar, blob) of a layer."""
    tar = io.BytesIO()
    pack_layer(layer, tar.write, epoch=epoch)
    out = io.BytesIO()
    c = compressor(compression, None, out.write)
    c.write(tar.getvalue())
    c.close()
    return tar.getvalue(), out.getvalue()


def compress(tar: bytes, compression: str) -> bytes:
    if compression == "gzip":
        return gzip.compress(tar, mtime=0)
    if compression == "zstd":
        return zstandard.ZstdCompressor().compress(tar)
    return tar


class MemoryOpener:
    """A BlobOpener over blobs kept in memory; each open() appends the digest to `log`."""

    def __init__(self, log: Path):
        self.blobs: dict[str, bytes] = {}
        self.log = log

    def add(self, blob: bytes, tar: bytes, compression: str = "gzip",
            diff_id: str | None = None) -> BlobRecord:
        self.blobs[sha(blob)] = blob
        return BlobRecord(sha(blob), len(blob), MEDIA[compression], diff_id or sha(tar))

    @contextlib.contextmanager
    def open(self, origin: str, blob: BlobRecord) -> Iterator[io.BytesIO]:
        with open(self.log, "a") as f:
            f.write(blob.digest + "\n")
        yield io.BytesIO(self.blobs[blob.digest])

    def fetch(self, origin: str, blobs: Sequence[BlobRecord], progress: object = None) -> None:
        pass

    def prefetch(self, origin: str, blobs: Sequence[BlobRecord]) -> None:
        pass

    def opened(self) -> list[str]:
        return self.log.read_text().split() if self.log.exists() else []


def image_of(store: Store, opener: MemoryOpener, layers: Sequence[Layer],
             compression: str = "gzip", origin: str = "test://image") -> Ref | None:
    """The layers packed as blobs and added back as a lazy image."""
    recs = []
    for layer in layers:
        tar, blob = pack(layer, compression)
        recs.append(opener.add(blob, tar, compression))
    return store.add_image_layers(None, recs, origin)


def raw_tar(entries: Sequence[tuple[str, str, bytes | str]]) -> bytes:
    """A tar of (name, type, data): type "f" file, "d" dir, "l" symlink (data: target),
    "h" hardlink (data: target), "c" char device (data: "major,minor"), names as given."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, data in entries:
            info = tarfile.TarInfo(name)
            info.mode = 0o755 if kind == "d" else 0o644
            info.mtime = 1_600_000_000
            if kind == "d":
                info.type = tarfile.DIRTYPE
            elif kind == "l":
                info.type, info.linkname = tarfile.SYMTYPE, str(data)
            elif kind == "h":
                info.type, info.linkname = tarfile.LNKTYPE, str(data)
            elif kind == "c":
                info.type = tarfile.CHRTYPE
                info.devmajor, info.devminor = (int(x) for x in str(data).split(","))
            if kind == "f":
                payload = data if isinstance(data, bytes) else data.encode()
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
            else:
                tar.addfile(info)
    return buf.getvalue()


def layer_tree(data: bytes) -> dict[str, tuple]:
    """One layer blob (gzip or plain tar) as path -> (kind, ..., mode, uid, gid): kind "dir",
    "link" with its target, "file" with a short content digest, or "other" with its type."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    out: dict[str, tuple] = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for m in tar.getmembers():
            name = m.name.lstrip("./").rstrip("/")
            if m.isdir():
                what: tuple = ("dir",)
            elif m.issym():
                what = ("link", m.linkname)
            elif m.isfile():
                f = tar.extractfile(m)
                assert f is not None
                what = ("file", hashlib.sha256(f.read()).hexdigest()[:16])
            else:
                what = ("other", m.type)
            out[name] = (*what, m.mode & 0o7777, m.uid, m.gid)
    return out
