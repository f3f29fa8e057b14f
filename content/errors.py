"""Typed errors of the content room: every one is an LLBError with a one-line message that
names the blob, manifest, registry or file involved, so the CLI prints one `error:` line.

Content from outside (registries, layouts) is hostile until checked: what it gets wrong is
bad input (exit 2). A registry that cannot be reached, hangs or fails is an environment
failure a retry may cure: exit 1, like a failed build."""

from __future__ import annotations

from llb.errors import LLBError


class ContentError(LLBError):
    """Something is wrong with stored or fetched content."""


class InvalidDigestError(ContentError):
    """A string that should be a digest (`sha256:<64 hex>`) is not one."""


class BlobNotFoundError(ContentError):
    """The content store (or a layout) has no blob of this digest."""


class DigestMismatchError(ContentError):
    """Bytes do not match the digest or size that names them (corrupt, truncated, tampered)."""


class BlobChangedError(DigestMismatchError):
    """Bytes of a blob read while it downloaded are not the blob's after all (its download
    started again with other bytes): the reader must read the blob again from the start."""

    exit_code = 1


class BlobInUseError(ContentError):
    """A blob cannot be removed: a live holder leases it."""


class TransferCancelledError(ContentError):
    """A download or upload stopped because the caller (or a failed sibling) cancelled it."""

    exit_code = 1


class InvalidManifestError(ContentError):
    """A manifest, index, image config or descriptor is malformed."""


class UnsupportedMediaTypeError(InvalidManifestError):
    """A media type llb does not handle (schema 1, foreign layers, non-image artifacts)."""


class PlatformNotFoundError(ContentError):
    """An index has no manifest for the platform asked for."""


class LayoutError(ContentError):
    """An OCI image layout is malformed, or has no image by that tag or digest."""


class CredentialsError(ContentError):
    """The Docker credentials file cannot be read or holds a malformed entry."""


class RegistryError(ContentError):
    """A registry answered with an error or not at all."""

    exit_code = 1


class AuthError(RegistryError):
    """The registry refused the credentials, or asked for credentials llb does not have."""


class NotFoundError(RegistryError):
    """The registry has no such repository, tag, manifest or blob (HTTP 404)."""


class ServerError(RegistryError):
    """The registry failed (HTTP 5xx) or answered in a way the protocol does not allow."""


class RegistryTimeoutError(RegistryError):
    """The registry did not answer within the timeout."""


class UnreachableError(RegistryError):
    """The registry could not be reached (connection refused, no such host, TLS failure)."""


class ConnectionLostError(RegistryError):
    """The connection broke in the middle of a transfer (a download resumes from there)."""
