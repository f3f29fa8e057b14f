"""From the descriptor a reference names (an index or a manifest) to one platform's image:
its manifest and config, each checked against the digest and size that name it; and every
blob an image needs, for pushing or writing it. Shared by the registry client and OCI
layouts, which differ only in how they read a blob."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from llb.content import mediatypes as mt
from llb.content.descriptor import Descriptor
from llb.content.errors import InvalidManifestError
from llb.content.imageconfig import ImageConfig
from llb.content.manifest import Index, Manifest, parse_manifest
from llb.content.platforms import Platform

_MAX_NESTING = 4  # indexes of indexes; deeper is hostile

# reads the (small) blob a descriptor names, verified against its digest and size
BlobReader = Callable[[Descriptor], bytes]


@dataclass(frozen=True)
class Resolved:
    """One platform's image, as a name resolved it. `root` is what the name points at (pin
    it: `name@root.digest`); `descriptor` is the chosen image manifest's; `index` is the
    index it was chosen from (None when the name points at a manifest)."""

    name: str
    root: Descriptor
    descriptor: Descriptor
    manifest: Manifest
    config: ImageConfig
    index: Index | None
    platform: Platform

    @property
    def layers(self) -> tuple[Descriptor, ...]:
        """The image's layer blobs, bottom first."""
        return self.manifest.layers


def resolve_image(name: str, root: Descriptor, read: BlobReader, platform: Platform) -> Resolved:
    """Walk from `root` to `platform`'s manifest and config, reading blobs with `read`."""
    desc = root
    index: Index | None = None
    for _ in range(_MAX_NESTING + 1):
        what = f"{name}: manifest {desc.digest}"
        parsed = parse_manifest(read(desc), what, media_type=desc.media_type, expected=desc)
        if isinstance(parsed, Manifest):
            config_desc = parsed.config
            config = ImageConfig.from_bytes(read(config_desc), f"{name}: config "
                                            f"{config_desc.digest}", digest=config_desc.digest,
                                            size=config_desc.size)
            config.check_manifest(parsed, f"{name}: manifest {desc.digest}")
            if desc is root:
                desc = Descriptor(parsed.media_type, desc.digest, desc.size, desc.annotations,
                                  config.platform, desc.urls)
            return Resolved(name, root, desc, parsed, config, index, platform)
        index = parsed
        child = parsed.select(platform, what)
        if not (mt.is_manifest(child.media_type) or mt.is_index(child.media_type)):
            raise InvalidManifestError(f"{what}: entry {child.digest} is not a manifest")
        desc = child
    raise InvalidManifestError(f"{name}: indexes nested more than {_MAX_NESTING} deep")


def walk_image(name: str, root: Descriptor, read: BlobReader) -> list[Descriptor]:
    """Every blob `root` needs, each once, in an order that writes a referenced blob before
    what references it: per manifest its config and layers, then the manifest; an index
    after its manifests. Only manifests and indexes are read."""
    out: dict[str, Descriptor] = {}

    def visit(desc: Descriptor, depth: int) -> None:
        if desc.digest in out:
            return
        if not (mt.is_index(desc.media_type) or mt.is_manifest(desc.media_type)):
            out[desc.digest] = desc  # some other artifact: copied as it is
            return
        if depth > _MAX_NESTING:
            raise InvalidManifestError(f"{name}: indexes nested more than {_MAX_NESTING} deep")
        what = f"{name}: manifest {desc.digest}"
        parsed = parse_manifest(read(desc), what, media_type=desc.media_type, expected=desc,
                                strict=False)
        if isinstance(parsed, Index):
            for child in parsed.manifests:
                visit(child, depth + 1)
        else:
            for blob in (parsed.config, *parsed.layers):
                out.setdefault(blob.digest, blob)
        out[desc.digest] = desc

    visit(root, 0)
    return list(out.values())
