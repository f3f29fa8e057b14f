"""`type=docker`: the result as a `docker save` archive (`docker load` / `podman load`
read it; so does `skopeo copy docker-archive:FILE`): `manifest.json` ([{Config, RepoTags,
Layers}]), the config and the layer blobs under `blobs/sha256/`, plus `index.json` and
`oci-layout`, so the same tar is an OCI layout too (as Docker 25's `docker save` writes it).
Docker media types; layers gzip (default) or uncompressed; deterministic bytes (sorted
entries, owners 0, every time SOURCE_DATE_EPOCH or 0)."""

from __future__ import annotations

import io
import sys
import tarfile
from pathlib import Path
from typing import IO

from llb.content.digest import digest_hex
from llb.content.jsondoc import canonical_json
from llb.content.layout import INDEX_FILE, LAYOUT_FILE, LAYOUT_VERSION, tagged
from llb.content.manifest import Index
from llb.content.store import ContentStore
from llb.snapshot import Ref, Store
from llb.solver.exporters import ExportContext, OutputSpec, check_options
from llb.solver.exporters.dest import check_file_dest, write_file_dest
from llb.solver.exporters.images import (COMMON_OPTIONS, fetch_blobs, BuiltImage, build_image, check_epoch,
                                         open_content, parse_options, ref_name)
from llb.solver.progress import Step

__all__ = ["check", "export", "write_archive"]

_CHUNK = 1 << 20


def check(spec: OutputSpec) -> None:
    """`type=docker,dest=FILE.tar|-[,name=REF][,compression=gzip|uncompressed]`."""
    check_options(spec, ("dest", *COMMON_OPTIONS), required=("dest",))
    parse_options(spec, oci_default=False, docker=True)
    if spec.dest != "-":
        check_file_dest(spec.dest)


def export(spec: OutputSpec, store: Store, ref: Ref | None,
           ctx: ExportContext | None = None) -> None:
    """Build the image in the content store, then write the archive."""
    opts = parse_options(spec, oci_default=False, docker=True)
    step = Step(ctx.progress if ctx else None, f"exporting to Docker image archive {spec.dest}")
    step.start()
    content = open_content(ctx)
    try:
        image = build_image(store, content, ref, ctx, opts, progress=step.blob("compress"))
        fetch_blobs(store, content, image.layers, progress=step.blob("pull"))
        step.log(f"manifest {image.descriptor.digest}")
        _, full = ref_name(opts)
        mtime = check_epoch() or 0
        if spec.dest == "-":
            write_archive(content, image, full, sys.stdout.buffer, mtime)
            sys.stdout.buffer.flush()
        else:
            write_file_dest(Path(spec.dest),
                            lambda f: write_archive(content, image, full, f, mtime))
    except BaseException as e:
        step.error(str(e).splitlines()[0] if str(e) else type(e).__name__)
        raise
    finally:
        content.close()
    step.done()


def write_archive(content: ContentStore, image: BuiltImage, name: str | None, f: IO[bytes],
                  mtime: int = 0) -> None:
    """Write the docker-save tar of `image` (stored in `content`) to `f`, tagged `name`."""
    manifest_bytes = image.manifest.to_bytes()
    layers = [f"blobs/sha256/{digest_hex(d.digest)}" for d in image.manifest.layers]
    entry = {"Config": f"blobs/sha256/{digest_hex(image.config_descriptor.digest)}",
             "RepoTags": [name] if name else [], "Layers": layers}
    documents = {
        "manifest.json": canonical_json([entry]),
        INDEX_FILE: Index((tagged(image.descriptor, name.rsplit(":", 1)[1], name)
                           if name else image.descriptor,)).to_bytes(),
        LAYOUT_FILE: canonical_json({"imageLayoutVersion": LAYOUT_VERSION}),
    }
    blobs = {image.config_descriptor.digest: image.config_descriptor.size,
             image.descriptor.digest: len(manifest_bytes)}
    for d in image.manifest.layers:
        blobs[d.digest] = d.size

    def info(path: str, size: int = 0, directory: bool = False) -> tarfile.TarInfo:
        t = tarfile.TarInfo(path)
        t.size, t.mtime, t.uid, t.gid, t.uname, t.gname = size, mtime, 0, 0, "", ""
        t.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
        t.mode = 0o755 if directory else 0o644
        return t

    with tarfile.open(fileobj=f, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(info("blobs", directory=True))
        tar.addfile(info("blobs/sha256", directory=True))
        for digest in sorted(blobs):
            with content.open(digest, blobs[digest]) as r:
                tar.addfile(info(f"blobs/sha256/{digest_hex(digest)}", blobs[digest]), r)
                r.read()  # reaching the end verifies the blob
        for path in sorted(documents):
            data = documents[path]
            tar.addfile(info(path, len(data)), io.BytesIO(data))
