"""Image manifests and indexes (OCI and Docker schema 2): parsed from hostile bytes with one
clear error per defect, and written canonically so one manifest always has one digest."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Union

from llb.content import mediatypes as mt
from llb.content.descriptor import Descriptor, check_annotations
from llb.content.digest import sha256_digest, verify_bytes
from llb.content.errors import (InvalidManifestError, PlatformNotFoundError,
                                UnsupportedMediaTypeError)
from llb.content.jsondoc import canonical_json, load_json
from llb.content.platforms import Platform, best_match, describe

MAX_MANIFEST_SIZE = 4 << 20  # containerd's limit; a bigger "manifest" is hostile
_GENERIC_TYPES = ("", "application/json", "application/octet-stream", "text/plain")


@dataclass(frozen=True)
class Manifest:
    """An image manifest: its config blob and its layer blobs, bottom layer first."""

    config: Descriptor
    layers: tuple[Descriptor, ...]
    media_type: str = mt.OCI_MANIFEST
    annotations: Mapping[str, str] = field(default_factory=dict, hash=False)

    def to_json(self) -> dict[str, Any]:
        """The manifest object."""
        return _document(self.media_type, self.annotations, config=self.config.to_json(),
                         layers=[d.to_json() for d in self.layers])

    def to_bytes(self) -> bytes:
        """Canonical bytes (what is stored, pushed and digested)."""
        return canonical_json(self.to_json())

    def descriptor(self, platform: Platform | None = None) -> Descriptor:
        """A descriptor of these canonical bytes (with a platform, for an index entry)."""
        data = self.to_bytes()
        return Descriptor(self.media_type, sha256_digest(data), len(data), platform=platform)


@dataclass(frozen=True)
class Index:
    """An OCI index or Docker manifest list: manifests, usually one per platform."""

    manifests: tuple[Descriptor, ...]
    media_type: str = mt.OCI_INDEX
    annotations: Mapping[str, str] = field(default_factory=dict, hash=False)

    def to_json(self) -> dict[str, Any]:
        """The index object."""
        return _document(self.media_type, self.annotations,
                         manifests=[d.to_json() for d in self.manifests])

    def to_bytes(self) -> bytes:
        """Canonical bytes."""
        return canonical_json(self.to_json())

    def descriptor(self) -> Descriptor:
        """A descriptor of these canonical bytes."""
        data = self.to_bytes()
        return Descriptor(self.media_type, sha256_digest(data), len(data))

    def select(self, platform: Platform, what: str = "index") -> Descriptor:
        """The image manifest best fitting `platform`; PlatformNotFoundError listing what the
        index offers otherwise. Entries without a platform are never chosen."""
        candidates = [(d.platform, d) for d in self.manifests if mt.is_manifest(d.media_type)
                      or mt.is_index(d.media_type)]
        found = best_match(platform, candidates)
        if found is None:
            raise PlatformNotFoundError(
                f"{what}: no manifest for platform {platform} (it has: "
                f"{describe(d.platform for d in self.manifests)})")
        return found


Parsed = Union[Manifest, Index]


def _document(media_type: str, annotations: Mapping[str, str], **fields: Any) -> dict[str, Any]:
    """A schema 2 manifest or index object: its fields, with annotations only when any."""
    out: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type, **fields}
    if annotations:
        out["annotations"] = dict(annotations)
    return out


def parse_manifest(data: bytes, what: str, *, media_type: str = "",
                   expected: Descriptor | None = None, strict: bool = True) -> Parsed:
    """Parse a manifest or index from hostile bytes. `media_type` is what the server or the
    referencing descriptor claims (generic types like application/json are ignored);
    `expected` is the descriptor naming these bytes, checked for digest and size first.
    strict=False accepts any config and layer media types (for copying an image's blobs,
    e.g. attestation manifests, never for unpacking)."""
    if expected is not None:
        verify_bytes(data, expected.digest, expected.size, what)
        media_type = media_type or expected.media_type
    if len(data) > MAX_MANIFEST_SIZE:
        raise InvalidManifestError(f"{what}: {len(data)} bytes, more than a manifest may have")
    claimed = media_type.split(";")[0].strip().lower() if media_type else ""
    if claimed in _GENERIC_TYPES:
        claimed = ""
    obj = load_json(data, what)
    if not isinstance(obj, dict):
        raise InvalidManifestError(f"{what}: not a JSON object")
    own = obj.get("mediaType", "")
    if not isinstance(own, str):
        raise InvalidManifestError(f"{what}: mediaType is not a string")
    for t in (claimed, own):
        reason = mt.refused_reason(t)
        if reason:
            raise UnsupportedMediaTypeError(f"{what}: {reason}")
    if obj.get("schemaVersion") == 1:
        raise UnsupportedMediaTypeError(f"{what}: {mt.refused_reason(mt.DOCKER_SCHEMA1)}")
    if claimed and own and claimed != own:
        raise InvalidManifestError(f"{what}: served as {claimed} but says it is {own}")
    kind = own or claimed or _guess(obj, what)
    if not (mt.is_index(kind) or mt.is_manifest(kind)):
        raise UnsupportedMediaTypeError(f"{what}: unsupported media type {kind!r} (llb reads "
                                        "OCI and Docker schema 2 manifests and indexes)")
    if "manifests" in obj and ("layers" in obj or "config" in obj):
        raise InvalidManifestError(f"{what}: has both manifests and layers (ambiguous)")
    if obj.get("schemaVersion") != 2:
        raise InvalidManifestError(f"{what}: schemaVersion is {obj.get('schemaVersion')!r}, "
                                   "not 2")
    annotations = check_annotations(obj.get("annotations"), what)
    if mt.is_index(kind):
        return Index(_descriptors(obj, "manifests", what), kind, annotations)
    config = Descriptor.from_json(obj.get("config"), f"{what}: config")
    layers = _descriptors(obj, "layers", what)
    if not strict:
        return Manifest(config, layers, kind, annotations)
    if config.media_type not in mt.CONFIG_TYPES:
        raise UnsupportedMediaTypeError(f"{what}: config of type {config.media_type!r}: not a "
                                        "container image")
    for i, layer in enumerate(layers):
        reason = mt.refused_reason(layer.media_type)
        if reason:
            raise UnsupportedMediaTypeError(f"{what}: layer {i}: {reason}")
        if not mt.is_layer(layer.media_type):
            raise UnsupportedMediaTypeError(f"{what}: layer {i}: unsupported media type "
                                            f"{layer.media_type!r}")
        if kind == mt.DOCKER_MANIFEST and mt.layer_compression(layer.media_type) == "zstd":
            raise InvalidManifestError(f"{what}: layer {i}: zstd layer in a Docker manifest")
    return Manifest(config, layers, kind, annotations)


def _guess(obj: dict[str, Any], what: str) -> str:
    """OCI allows a manifest without mediaType: tell index from manifest by its fields."""
    if "manifests" in obj:
        return mt.OCI_INDEX
    if "config" in obj or "layers" in obj:
        return mt.OCI_MANIFEST
    raise InvalidManifestError(f"{what}: neither a manifest nor an index (no mediaType, "
                               "config, layers or manifests)")


def _descriptors(obj: dict[str, Any], key: str, what: str) -> tuple[Descriptor, ...]:
    items = obj.get(key)
    if not isinstance(items, list):
        raise InvalidManifestError(f"{what}: {key} missing or not a list")
    return tuple(Descriptor.from_json(d, f"{what}: {key}[{i}]") for i, d in enumerate(items))
