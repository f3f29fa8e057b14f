"""Small real images for tests: deterministic layer tars (gzip-compressed as registries
serve them), an image config and a manifest, stored in a ContentStore; an index over
several platforms' manifests."""

from __future__ import annotations

import gzip
import io
import tarfile

from llb.content import mediatypes as mt
from llb.content.descriptor import Descriptor
from llb.content.digest import sha256_digest
from llb.content.imageconfig import ImageConfig
from llb.content.manifest import Index, Manifest
from llb.content.platforms import Platform
from llb.content.store import ContentStore


def layer_tar(files: dict[str, bytes]) -> bytes:
    """An uncompressed tar of these files (parents created), entries sorted, owners 0."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = sorted({"/".join(p.split("/")[:i]) for p in files
                       for i in range(1, p.count("/") + 1)})
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for path, data in sorted(files.items()):
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def make_image(store: ContentStore, layers: list[dict[str, bytes]], *,
               platform: str = "linux/amd64", docker: bool = False,
               cmd: list[str] | None = None) -> tuple[Descriptor, Manifest, ImageConfig]:
    """Store an image of these layers; its manifest descriptor, manifest and config."""
    descs, diff_ids = [], []
    for files in layers:
        tar = layer_tar(files)
        diff_ids.append(sha256_digest(tar))
        blob = gzip.compress(tar, mtime=0)
        store.put(blob)
        descs.append(Descriptor(mt.layer_media_type("gzip", docker=docker),
                                sha256_digest(blob), len(blob)))
    plat = Platform.parse(platform)
    config = ImageConfig.new(plat, diff_ids, env=["PATH=/usr/bin:/bin"], working_dir="/",
                             cmd=cmd or ["/bin/sh"], created="1970-01-01T00:00:00Z")
    data = config.to_bytes()
    store.put(data)
    config_desc = Descriptor(mt.DOCKER_CONFIG if docker else mt.OCI_CONFIG,
                             sha256_digest(data), len(data))
    manifest = Manifest(config_desc, tuple(descs),
                        mt.DOCKER_MANIFEST if docker else mt.OCI_MANIFEST)
    store.put(manifest.to_bytes())
    return manifest.descriptor(plat), manifest, config


def make_index(store: ContentStore, manifests: list[Descriptor]) -> Descriptor:
    """Store an OCI index over these (platform-carrying) manifest descriptors."""
    index = Index(tuple(manifests))
    store.put(index.to_bytes())
    return index.descriptor()
