"""Image references split into what the distribution API needs: registry host, repository
path, and the tag or digest to fetch (normalised as Docker does, by llb.refs)."""

from __future__ import annotations

from dataclasses import dataclass

from llb.refs import DEFAULT_DOMAIN, normalize_image_ref

DOCKER_HUB_HOST = "registry-1.docker.io"  # where docker.io's API lives


@dataclass(frozen=True)
class Reference:
    """A normalised image reference: `registry/repository[:tag][@digest]`."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, ref: str) -> "Reference":
        """Normalise and split `ref` (`busybox` → docker.io, library/busybox, latest);
        llb.DefinitionError when it is malformed."""
        full = normalize_image_ref(ref)
        name, _, digest = full.partition("@")
        colon = name.rfind(":")
        tag = None
        if colon > name.rfind("/"):
            name, tag = name[:colon], name[colon + 1:]
        registry, _, repository = name.partition("/")
        return cls(registry, repository, tag, digest or None)

    @property
    def name(self) -> str:
        """`registry/repository`, without tag or digest."""
        return f"{self.registry}/{self.repository}"

    @property
    def object(self) -> str:
        """What to fetch from the manifests endpoint: the digest when pinned, else the tag."""
        return self.digest or self.tag or "latest"

    @property
    def host(self) -> str:
        """The host (and port) serving this registry's API."""
        return DOCKER_HUB_HOST if self.registry == DEFAULT_DOMAIN else self.registry

    def with_digest(self, digest: str) -> "Reference":
        """The same name pinned to `digest` (the tag is kept)."""
        return Reference(self.registry, self.repository, self.tag, digest)

    def with_tag(self, tag: str | None) -> "Reference":
        """The same name with another tag and no digest."""
        return Reference(self.registry, self.repository, tag, None)

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += ":" + self.tag
        if self.digest:
            out += "@" + self.digest
        return out
