"""`type=docker`: the result as a `docker save` archive (`docker load` / `podman load`
read it; so does `skopeo copy docker-archive:FILE`): `manifest.json` ([{Config, RepoTags,
Layers}]), the config and the layer blobs under `blobs/sha256/`, plus `index.json` and
`oci-layout`, so the same tar is an OCI layout too (as Docker 25's `docker save` writes it).
Docker media types; layers gzip (default) or uncompressed; deterministic bytes (sorted
entries, owners 0, every time SOURCE_DATE_EPOCH or 0)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO

from llb.content.digest import digest_hex
from llb.content.jsondoc import canonical_json
from llb.content.layout import tagged, write_layout_tar
from llb.content.store import ContentStore
from llb.snapshot import Ref, Store
from llb.solver.exporters import ExportContext, OutputSpec, check_options
from llb.solver.exporters.dest import check_file_dest, write_file_dest
from llb.solver.exporters.images import (
    COMMON_OPTIONS, BuiltImage, build_image, check_epoch, exporting, fetch_blobs, parse_options,
    ref_name,
)

__all__ = ["check", "export", "write_archive"]

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
    with exporting(ctx, f"exporting to Docker image archive {spec.dest}") as (step, content):
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


def write_archive(content: ContentStore, image: BuiltImage, name: str | None, f: IO[bytes],
                  mtime: int = 0) -> None:
    """Write the docker-save tar of `image` (stored in `content`) to `f`, tagged `name`: the
    OCI layout tar of the image plus Docker's manifest.json."""
    layers = [f"blobs/sha256/{digest_hex(d.digest)}" for d in image.manifest.layers]
    entry = {"Config": f"blobs/sha256/{digest_hex(image.config_descriptor.digest)}",
             "RepoTags": [name] if name else [], "Layers": layers}
    desc = tagged(image.descriptor, name.rsplit(":", 1)[1], name) if name else image.descriptor
    write_layout_tar(content, f, [desc], mtime=mtime,
                     extra={"manifest.json": canonical_json([entry])})
