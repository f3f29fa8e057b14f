"""content: what llb keeps and exchanges by digest. The content store (sha256-addressed
blobs under `<root>/content/`), OCI facts (media types, descriptors, manifests, indexes,
image configs, platforms), the registry client and OCI image layouts (docs/internals.md).

Only the store and the errors are imported here: the OCI modules need json, the registry
client httpx, and a build that uses no images must not pay for either."""

from llb.content.errors import (AuthError, BlobInUseError, BlobNotFoundError, ContentError,
                                DigestMismatchError, InvalidManifestError, LayoutError,
                                NotFoundError, PlatformNotFoundError, RegistryError,
                                RegistryTimeoutError, ServerError, UnsupportedMediaTypeError)
from llb.content.reader import BlobReader
from llb.content.store import BlobInfo, ContentStore, Ingest

__all__ = [
    "AuthError", "BlobInUseError", "BlobInfo", "BlobNotFoundError", "BlobReader",
    "ContentError", "ContentStore", "DigestMismatchError", "Ingest", "InvalidManifestError",
    "LayoutError", "NotFoundError", "PlatformNotFoundError", "RegistryError",
    "RegistryTimeoutError", "ServerError", "UnsupportedMediaTypeError",
]
