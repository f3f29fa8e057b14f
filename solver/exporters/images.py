"""What the image exporters (oci, docker, image) share: their options (name, compression,
compression-level, oci-mediatypes), SOURCE_DATE_EPOCH, and turning a solved ref into an
image in the content store: one blob per layer of its chain (llb.solver.layerblobs, which
reuses a pulled layer's blob and remembers a built one's), a config carrying the definition's image
config and one history entry per layer named after the vertex that made it, and a manifest.

Everything an image needs is in the content store when `build_image` returns; the exporters
only copy blobs out (a layout, an archive) or push them."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from llb.content import mediatypes as mt
from llb.content.descriptor import Descriptor
from llb.content.imageconfig import ImageConfig
from llb.content.manifest import Manifest
from llb.content.platforms import Platform, host_platform
from llb.content.reference import Reference
from llb.content.store import ContentStore
from llb.errors import LLBError
from llb.imagemeta import ImageMeta
from llb.snapshot import Ref, Store
from llb.solver import layerblobs
from llb.solver.errors import ExportError, OutputSpecError
from llb.solver.exporters import ExportContext, OutputSpec
from llb.solver.layerblobs import LayerBlob
from llb.solver.progress import Step

DEFAULT_COMPRESSION = "gzip"
LEVELS = {"gzip": (0, 9), "zstd": (1, 22)}
EPOCH_VARIABLE = "SOURCE_DATE_EPOCH"
COMMON_OPTIONS = ("name", "compression", "compression-level", "oci-mediatypes")


@dataclass(frozen=True)
class ImageOptions:
    """The parsed image options of an output spec."""

    name: Reference | None
    compression: str
    level: int | None
    oci: bool  # OCI media types (else Docker's)


@dataclass(frozen=True)
class BuiltImage:
    """An image stored in the content store: its manifest's descriptor (with platform), the
    manifest, its config, and the layer blobs in order."""

    descriptor: Descriptor
    manifest: Manifest
    config: ImageConfig
    config_descriptor: Descriptor
    layers: tuple[LayerBlob, ...]


def parse_options(spec: OutputSpec, *, name_required: bool = False,
                  oci_default: bool = True, docker: bool = False) -> ImageOptions:
    """The spec's image options, checked (OutputSpecError: exit 2, before solving)."""
    attrs = spec.attrs
    name = None
    if attrs.get("name"):
        try:
            name = Reference.parse(attrs["name"])
        except LLBError as e:
            raise OutputSpecError(f"--output {spec.text}: name: {e}") from None
        if name.digest:
            raise OutputSpecError(f"--output {spec.text}: name {attrs['name']!r} is pinned to a "
                                  "digest; name the image by tag")
    elif name_required:
        raise OutputSpecError(f"--output {spec.text}: type={spec.type} needs name=")
    compression = attrs.get("compression", DEFAULT_COMPRESSION)
    if compression not in mt.COMPRESSIONS:
        raise OutputSpecError(f"--output {spec.text}: compression={compression!r}: expected "
                              f"{', '.join(mt.COMPRESSIONS)}")
    level = None
    if "compression-level" in attrs:
        text = attrs["compression-level"]
        if compression not in LEVELS:
            raise OutputSpecError(f"--output {spec.text}: compression-level needs "
                                  "compression=gzip or zstd")
        low, high = LEVELS[compression]
        try:
            level = int(text)
        except ValueError:
            level = None
        if level is None or not low <= level <= high:
            raise OutputSpecError(f"--output {spec.text}: compression-level={text!r}: "
                                  f"{compression} levels are {low} to {high}")
    oci = bool_option(spec, "oci-mediatypes", oci_default)
    if docker and oci:
        raise OutputSpecError(f"--output {spec.text}: type=docker writes Docker media types "
                              "(oci-mediatypes=true: use type=oci)")
    if not oci and compression == "zstd":
        raise OutputSpecError(f"--output {spec.text}: zstd layers need OCI media types "
                              "(Docker manifests cannot hold them)")
    check_epoch()
    return ImageOptions(name, compression, level, oci)


def bool_option(spec: OutputSpec, key: str, default: bool) -> bool:
    """The true|false option `key` (default when absent); OutputSpecError otherwise."""
    value = spec.attrs.get(key)
    if value is None or value == "":
        return default
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise OutputSpecError(f"--output {spec.text}: {key}={value!r}: expected true or false")


def check_epoch() -> int | None:
    """SOURCE_DATE_EPOCH as an int (None when unset or empty); OutputSpecError when it is
    not a count of seconds."""
    text = os.environ.get(EPOCH_VARIABLE, "")
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0 or value > 253402300799:  # 9999-12-31T23:59:59Z
        raise OutputSpecError(f"{EPOCH_VARIABLE}={text[:40]!r} is not a number of seconds "
                              "since 1970")
    return value


def rfc3339(seconds: float) -> str:
    """UTC time as image configs write it (`2024-01-02T03:04:05Z`)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(seconds)))


def fetch_blobs(store: Store, content: ContentStore, blobs: Sequence[LayerBlob],
                progress: Callable[[str, int, int], None] | None = None) -> None:
    """Make sure the bytes of every blob are in the content store: a pulled layer's blob is
    only named by `layer_blobs` until something must copy it (a layout, an archive, a push
    to a registry that lacks it)."""
    missing = [b for b in blobs if not content.exists(b.digest)]
    if missing:
        layerblobs.fetch_blobs(store, content, missing, progress=progress)


def history_names(ref: Ref | None, names: Mapping[str, str]) -> list[str]:
    """The name of the vertex that made each layer of ref's chain. A layer no vertex of the
    solve produced (a lower layer of a pulled image) takes the name of the nearest layer
    above it that one did."""
    if ref is None:
        return []
    chain = ref.layer_chain()
    out: list[str] = []
    pending = 0
    for layer in chain:
        name = names.get(layer.id)
        if name is None:
            pending += 1
            continue
        out.extend([name] * (pending + 1))
        pending = 0
    fallback = names.get(ref.id, "")
    out.extend([fallback] * pending)
    return out


def image_config(meta: ImageMeta | None, diff_ids: Sequence[str], history: Sequence[str],
                 *, platform: Platform, epoch: int | None, now: float | None = None) -> ImageConfig:
    """The image's config: the definition's image config, one diff_id and one history entry
    per layer, `created` (SOURCE_DATE_EPOCH when set, so exports are reproducible)."""
    meta = meta or ImageMeta()
    created = rfc3339(epoch if epoch is not None else (time.time() if now is None else now))
    entries: list[dict[str, Any]] = [{"created": created, "created_by": name or "llb",
                                      "comment": "llb"} for name in history]
    return ImageConfig.new(platform, diff_ids, env=meta.env, working_dir=meta.working_dir,
                           user=meta.user, entrypoint=meta.entrypoint, cmd=meta.cmd,
                           labels=dict(meta.labels), exposed_ports=meta.expose,
                           history=entries, created=created)


def build_image(store: Store, content: ContentStore, ref: Ref | None,
                ctx: ExportContext | None, opts: ImageOptions,
                progress: Callable[[str, int, int], None] | None = None) -> BuiltImage:
    """Store the image of ref (its layer blobs, config and manifest) in the content store."""
    ctx = ctx or ExportContext()
    epoch = check_epoch()
    blobs = tuple(layerblobs.layer_blobs(store, content, ref, compression=opts.compression,
                                         level=opts.level, epoch=epoch, progress=progress))
    chain = ref.layer_chain() if ref is not None else []
    if len(blobs) != len(chain):
        raise ExportError(f"image export: {len(chain)} layers but {len(blobs)} blobs")
    platform = host_platform()
    names = history_names(ref, ctx.names)
    config = image_config(ctx.image, [b.diff_id for b in blobs], names, platform=platform,
                          epoch=epoch)
    data = config.to_bytes()
    content.put(data)
    config_desc = Descriptor(mt.OCI_CONFIG if opts.oci else mt.DOCKER_CONFIG,
                             config.digest(), len(data))
    layers = tuple(_layer_descriptor(b.descriptor(), opts.oci) for b in blobs)
    manifest = Manifest(config_desc, layers, mt.OCI_MANIFEST if opts.oci else mt.DOCKER_MANIFEST)
    content.put(manifest.to_bytes())
    return BuiltImage(manifest.descriptor(platform), manifest, config, config_desc, blobs)


def _layer_descriptor(desc: Descriptor, oci: bool) -> Descriptor:
    """The blob as this manifest lists it: the media type of its compression in OCI's or
    Docker's terms (the bytes are the same)."""
    if not mt.is_layer(desc.media_type):
        raise ExportError(f"image export: layer blob {desc.digest} has media type "
                          f"{desc.media_type!r}, not a layer")
    compression = mt.layer_compression(desc.media_type)
    media_type = mt.layer_media_type(compression, docker=not oci)
    return Descriptor(media_type, desc.digest, desc.size)


def open_content(ctx: ExportContext | None) -> ContentStore:
    """The content store of the solve's root."""
    root = ctx.root if ctx is not None else None
    if root is None:
        raise ExportError("image export: no llb root given (the content store lives there)")
    return ContentStore(Path(root))



@contextmanager
def exporting(ctx: ExportContext | None, title: str) -> Iterator[tuple[Step, ContentStore]]:
    """An export's progress step and the content store, for the block: the step ends done,
    or in error with the first line of what went wrong; the store is closed either way."""
    step = Step(ctx.progress if ctx else None, title)
    step.start()
    content = open_content(ctx)
    try:
        yield step, content
    except BaseException as e:
        step.error(str(e).splitlines()[0] if str(e) else type(e).__name__)
        raise
    finally:
        content.close()
    step.done()

def source_reference(source: str | None) -> Reference | None:
    """The repository a pulled blob came from ("REGISTRY/REPOSITORY"), as a Reference."""
    if not source or "/" not in source:
        return None
    registry, _, repository = source.partition("/")
    return Reference(registry, repository)


def ref_name(opts: ImageOptions) -> tuple[str, str | None]:
    """(tag, full image name) an image is listed under: the name's tag ("latest" when the
    name has none, or when no name was given) and the normalised name with its tag."""
    if opts.name is None:
        return "latest", None
    tag = opts.name.tag or "latest"
    return tag, f"{opts.name.name}:{tag}"
