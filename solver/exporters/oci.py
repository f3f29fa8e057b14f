"""`type=oci`: the result as an OCI image layout, in a tar (`dest=FILE.tar`, `dest=-` for
stdout) or a directory (`dest=DIR/`, an existing directory, or `tar=false`), as
`buildctl --output type=oci` writes it. index.json names the image by its tag
(`org.opencontainers.image.ref.name`; "latest" without name=) and full name
(`io.containerd.image.name`). A directory that already is a layout is added to; the tar is
deterministic (sorted entries, owners 0, every time SOURCE_DATE_EPOCH or 0)."""

from __future__ import annotations

import sys
from pathlib import Path

from llb.content.layout import LAYOUT_FILE, tagged, write_layout, write_layout_tar
from llb.snapshot import Ref, Store
from llb.solver.errors import OutputSpecError
from llb.solver.exporters import ExportContext, OutputSpec, check_options
from llb.solver.exporters.dest import check_dir_dest, check_file_dest, write_file_dest
from llb.solver.exporters.images import (COMMON_OPTIONS, build_image, check_epoch, exporting, fetch_blobs,
                                         parse_options, ref_name)

__all__ = ["check", "export", "is_dir"]


def is_dir(spec: OutputSpec) -> bool:
    """True when the layout is written as a directory (tar=false, dest ending in "/", or an
    existing directory), not a tar."""
    tar = spec.attrs.get("tar", "true").lower()
    if tar not in ("true", "false", "1", "0"):
        raise OutputSpecError(f"--output {spec.text}: tar={spec.attrs['tar']!r}: expected true "
                              "or false")
    return tar in ("false", "0") or spec.dest.endswith("/") or Path(spec.dest).is_dir()


def check(spec: OutputSpec) -> None:
    """`type=oci,dest=FILE.tar|DIR|-[,name=REF][,compression=...][,tar=false]`."""
    check_options(spec, ("dest", "tar", *COMMON_OPTIONS), required=("dest",))
    parse_options(spec)
    if is_dir(spec):
        if spec.dest == "-":
            raise OutputSpecError(f"--output {spec.text}: tar=false needs a directory dest=")
        path = Path(spec.dest)
        if path.is_dir() and any(path.iterdir()) and not (path / LAYOUT_FILE).exists():
            raise OutputSpecError(f"--output dest={spec.dest}: not empty and not an OCI layout",
                                  path=spec.dest)
        check_dir_dest(spec.dest)
    elif spec.dest != "-":
        check_file_dest(spec.dest)


def export(spec: OutputSpec, store: Store, ref: Ref | None,
           ctx: ExportContext | None = None) -> None:
    """Build the image in the content store, then write the layout."""
    opts = parse_options(spec)
    with exporting(ctx, f"exporting to OCI image {spec.dest}") as (step, content):
        image = build_image(store, content, ref, ctx, opts, progress=step.blob("compress"))
        fetch_blobs(store, content, image.layers, progress=step.blob("pull"))
        step.log(f"manifest {image.descriptor.digest}")
        tag, full = ref_name(opts)
        entry = [tagged(image.descriptor, tag, full)]
        if is_dir(spec):
            write_layout(content, spec.dest, entry)
        else:
            mtime = check_epoch() or 0
            if spec.dest == "-":
                write_layout_tar(content, sys.stdout.buffer, entry, mtime=mtime)
                sys.stdout.buffer.flush()
            else:
                write_file_dest(Path(spec.dest),
                                lambda f: write_layout_tar(content, f, entry, mtime=mtime))
