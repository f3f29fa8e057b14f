"""Media types of OCI and Docker images: which llb reads and writes, and what each means.

Accepted: OCI index and manifest, Docker manifest list and schema 2 manifest; image configs
of both; layers as OCI tar, tar+gzip, tar+zstd and Docker's rootfs.diff.tar(.gzip)."""

from __future__ import annotations

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"

DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

# what llb refuses, with the reason it gives
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
_REFUSED = {
    DOCKER_SCHEMA1: "Docker schema 1 manifests are not supported (push the image again "
                    "with a current client)",
    DOCKER_SCHEMA1_SIGNED: "Docker schema 1 manifests are not supported (push the image "
                           "again with a current client)",
    "application/vnd.oci.image.layer.nondistributable.v1.tar": "foreign layers are not supported",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": "foreign layers are not supported",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": "foreign layers are not supported",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": "foreign layers are not supported",
}

INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
CONFIG_TYPES = frozenset({OCI_CONFIG, DOCKER_CONFIG})
_COMPRESSION = {
    OCI_LAYER: "uncompressed", OCI_LAYER_GZIP: "gzip", OCI_LAYER_ZSTD: "zstd",
    DOCKER_LAYER: "uncompressed", DOCKER_LAYER_GZIP: "gzip",
}
LAYER_TYPES = frozenset(_COMPRESSION)
COMPRESSIONS = ("uncompressed", "gzip", "zstd")

# what a registry is asked for when fetching a manifest by tag or digest
MANIFEST_ACCEPT = ", ".join([OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST])


def refused_reason(media_type: str) -> str | None:
    """Why llb refuses a media type it knows of, or None."""
    return _REFUSED.get(media_type)


def is_index(media_type: str) -> bool:
    """An OCI index or Docker manifest list."""
    return media_type in INDEX_TYPES


def is_manifest(media_type: str) -> bool:
    """An OCI image manifest or Docker schema 2 manifest."""
    return media_type in MANIFEST_TYPES


def is_layer(media_type: str) -> bool:
    """A layer tar llb can unpack."""
    return media_type in _COMPRESSION


def layer_compression(media_type: str) -> str:
    """"uncompressed", "gzip" or "zstd" for a layer media type (KeyError if not a layer)."""
    return _COMPRESSION[media_type]


def layer_media_type(compression: str, *, docker: bool = False) -> str:
    """The layer media type for a compression, OCI's or (for Docker manifests) Docker's.
    Docker manifests have no zstd layer type: ValueError."""
    if compression not in COMPRESSIONS:
        raise ValueError(f"unknown compression {compression!r} (use {', '.join(COMPRESSIONS)})")
    if docker:
        if compression == "zstd":
            raise ValueError("Docker schema 2 manifests cannot hold zstd layers (use OCI)")
        return DOCKER_LAYER_GZIP if compression == "gzip" else DOCKER_LAYER
    return {"uncompressed": OCI_LAYER, "gzip": OCI_LAYER_GZIP, "zstd": OCI_LAYER_ZSTD}[compression]
