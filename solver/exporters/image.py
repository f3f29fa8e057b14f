"""`type=image` (alias `type=registry`): the result as an image in the root's content store
and, with `push=true`, pushed to a registry under `name=` (BuildKit's image exporter).
Pushing sends only the blobs the registry lacks: each is asked for first (HEAD), a layer
pulled from another repository of the same registry is mounted from there, the rest are
uploaded; then the manifest under the name's tag. `registry.insecure=true` speaks plain
HTTP to the name's registry (loopback registries always are). Without push, the image is
built into the content store only (its digest is reported)."""

from __future__ import annotations

from llb.content.errors import BlobNotFoundError
from llb.content.reference import Reference
from llb.content.store import ContentStore
from llb.snapshot import Ref, Store
from llb.solver.exporters import ExportContext, OutputSpec, check_options
from llb.solver.exporters.images import (COMMON_OPTIONS, BuiltImage, bool_option, build_image,
                                         exporting, fetch_blobs, parse_options,
                                         source_reference)
from llb.solver.progress import Step

__all__ = ["check", "export"]

TIMEOUT = 30.0  # seconds a registry may stay silent before the push fails


def check(spec: OutputSpec) -> None:
    """`type=image,name=REF[,push=true][,registry.insecure=true][,compression=...]`."""
    check_options(spec, ("push", "registry.insecure", *COMMON_OPTIONS), required=("name",))
    parse_options(spec, name_required=True)
    bool_option(spec, "push", False)
    bool_option(spec, "registry.insecure", False)


def export(spec: OutputSpec, store: Store, ref: Ref | None,
           ctx: ExportContext | None = None) -> None:
    """Build the image in the content store; push it when asked."""
    opts = parse_options(spec, name_required=True)
    assert opts.name is not None
    push = bool_option(spec, "push", False)
    insecure = bool_option(spec, "registry.insecure", False)
    name = opts.name if opts.name.tag else opts.name.with_tag("latest")
    title = f"{'pushing' if push else 'exporting'} image {name}"
    with exporting(ctx, title) as (step, content):
        image = build_image(store, content, ref, ctx, opts, progress=step.blob("compress"))
        step.log(f"manifest {image.descriptor.digest}")
        if push:
            _push(store, content, image, name, insecure, step)


def _push(store: Store, content: ContentStore, image: BuiltImage, name: Reference,
          insecure: bool, step: Step) -> None:
    from llb.content.registry import RegistryClient  # httpx: only when pushing

    mount_from: dict[str, list[Reference]] = {}
    for blob in image.layers:
        source = source_reference(blob.source)
        if source is not None and source.registry == name.registry \
                and source.repository != name.repository:
            mount_from[blob.digest] = [source]
    with RegistryClient(content, insecure=[name.registry] if insecure else (),
                        timeout=TIMEOUT) as client:
        # a pulled blob whose bytes are not here: the registry has it, or it mounts from the
        # repository the blob came from; else it is fetched first
        absent = [b for b in image.layers if not content.exists(b.digest)]
        needed = [b for b in absent if b.digest not in mount_from
                  and not client.blob_exists(name, b.digest)]
        fetch_blobs(store, content, needed, progress=step.blob("pull"))
        try:
            pushed = client.push_image(name, image.descriptor, mount_from=mount_from,
                                       progress=step.blob("push"))
        except BlobNotFoundError:  # a mount the registry refused: bring the bytes here
            fetch_blobs(store, content, absent, progress=step.blob("pull"))
            pushed = client.push_image(name, image.descriptor, progress=step.blob("push"))
    step.log(f"pushed {name.name}:{name.tag}@{pushed.digest}")
