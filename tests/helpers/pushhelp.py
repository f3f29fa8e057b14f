"""Real images for the image-source tests: built by llb itself (the busybox root of
examples/busybox, plus whatever a test adds with file ops), their layers packed by the
layer <-> blob bridge, and pushed to a real registry with the content room's client."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import llb
from llb.content import mediatypes as mt
from llb.content.descriptor import Descriptor
from llb.content.imageconfig import ImageConfig
from llb.content.layout import tagged, write_layout
from llb.content.manifest import Index, Manifest
from llb.content.platforms import Platform, host_platform
from llb.content.registry import RegistryClient
from llb.content.store import ContentStore
from llb.solver.layerblobs import LayerBlob, layer_blobs
from llb.solver.solve import Solver
from exechelp import LOCALS, load_busybox


def busybox_state() -> llb.State:
    """examples/busybox's root (busybox with its applets, /etc, /tmp)."""
    return load_busybox().busybox()


def image_of(root: Path, state: llb.State, *, env: Sequence[str] = ("PATH=/bin",),
             working_dir: str = "", user: str = "", platform: Platform | None = None,
             diff_ids: Sequence[str] | None = None) -> tuple[Descriptor, list[LayerBlob]]:
    """Solve state under root and store it as an image (manifest, config, layer blobs) in
    root's content store; its manifest descriptor and layer blobs."""
    plat = platform or host_platform()
    with Solver(root) as solver:
        ref = solver.solve(state.to_definition(), LOCALS).ref
        content = ContentStore(root)
        try:
            blobs = layer_blobs(solver.store, content, ref)
            config = ImageConfig.new(plat, list(diff_ids) if diff_ids is not None
                                     else [b.diff_id for b in blobs], env=env,
                                     working_dir=working_dir, user=user,
                                     created="1970-01-01T00:00:00Z")
            data = config.to_bytes()
            info = content.put(data)
            manifest = Manifest(Descriptor(mt.OCI_CONFIG, info.digest, info.size),
                                tuple(b.descriptor() for b in blobs), mt.OCI_MANIFEST)
            mdata = manifest.to_bytes()
            minfo = content.put(mdata)
            # the layers' content must outlive this root's GC: lease them for good
            for b in blobs:
                content.lease(b.digest, "test:image")
        finally:
            content.close()
    return Descriptor(mt.OCI_MANIFEST, minfo.digest, minfo.size, platform=plat), blobs


def index_of(root: Path, manifests: Sequence[Descriptor]) -> Descriptor:
    """An OCI index over these (platform-carrying) manifest descriptors, stored in root."""
    content = ContentStore(root)
    try:
        index = Index(tuple(manifests))
        info = content.put(index.to_bytes())
        return Descriptor(mt.OCI_INDEX, info.digest, info.size)
    finally:
        content.close()


def push(root: Path, desc: Descriptor, name: str) -> str:
    """Push the stored image `desc` (manifest or index) as `name`; its digest."""
    content = ContentStore(root)
    try:
        with RegistryClient(content, credentials=_NoCredentials()) as client:
            return client.push_image(name, desc).digest
    finally:
        content.close()


def write_oci_layout(root: Path, desc: Descriptor, dest: Path, tag: str) -> None:
    """Write the stored image `desc` to an OCI layout directory under `tag`."""
    content = ContentStore(root)
    try:
        write_layout(content, dest, [tagged(desc, tag)])
    finally:
        content.close()


class _NoCredentials:
    def get(self, registry: str) -> None:
        return None
