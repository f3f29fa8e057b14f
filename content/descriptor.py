"""OCI content descriptors: what a manifest or index says about a blob it references (media
type, digest, size, and for index entries the platform and annotations)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from llb.content.digest import check_digest
from llb.content.errors import InvalidDigestError, InvalidManifestError
from llb.content.platforms import Platform

ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_IMAGE_NAME = "io.containerd.image.name"  # the full name, as BuildKit writes it
_MAX_SIZE = 1 << 50  # larger than any real blob; guards arithmetic on hostile numbers


@dataclass(frozen=True)
class Descriptor:
    """A reference to a blob by media type, digest and size."""

    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict, hash=False)
    platform: Platform | None = None
    urls: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The OCI descriptor object."""
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest,
                               "size": self.size}
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform is not None:
            out["platform"] = self.platform.to_json()
        return out

    @classmethod
    def from_json(cls, value: object, what: str) -> "Descriptor":
        """A descriptor from hostile JSON; InvalidManifestError naming `what` it was."""
        if not isinstance(value, dict):
            raise InvalidManifestError(f"{what}: descriptor is not an object")
        media_type = value.get("mediaType")
        if not isinstance(media_type, str) or not media_type:
            raise InvalidManifestError(f"{what}: descriptor has no mediaType")
        try:
            digest = check_digest(value.get("digest"), f"{what}: digest")
        except InvalidDigestError as e:
            raise InvalidManifestError(str(e)) from None
        size = value.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size < _MAX_SIZE:
            raise InvalidManifestError(f"{what}: descriptor size {size!r} is not a byte count")
        annotations = check_annotations(value.get("annotations"), what)
        urls = value.get("urls") or []
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            raise InvalidManifestError(f"{what}: descriptor urls is not a list of strings")
        plat = value.get("platform")
        platform = Platform.from_json(plat, what) if plat is not None else None
        return cls(media_type, digest, size, annotations, platform, tuple(urls))

    def with_annotations(self, annotations: Mapping[str, str]) -> "Descriptor":
        """A copy with these annotations added (replacing those of the same keys)."""
        return Descriptor(self.media_type, self.digest, self.size,
                          {**self.annotations, **annotations}, self.platform, self.urls)

    def with_platform(self, platform: Platform | None) -> "Descriptor":
        """A copy naming this platform."""
        return Descriptor(self.media_type, self.digest, self.size, self.annotations,
                          platform, self.urls)


def check_annotations(value: object, what: str) -> dict[str, str]:
    """An annotations object (string to string); InvalidManifestError otherwise."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise InvalidManifestError(f"{what}: annotations are not a map of strings")
    return dict(value)
