"""Digests as OCI writes them (`sha256:<64 lowercase hex>`): checking, computing, and a
hasher that counts bytes, so every blob is verified by digest and size together."""

from __future__ import annotations

import hashlib
import re

from llb.content.errors import DigestMismatchError, InvalidDigestError

ALGORITHM = "sha256"
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_ANY_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")


def check_digest(value: object, what: str = "digest") -> str:
    """`value` if it is a sha256 digest, else InvalidDigestError naming `what` it was."""
    if isinstance(value, str) and _DIGEST_RE.match(value):
        return value
    if value is None:
        raise InvalidDigestError(f"{what} missing")
    if isinstance(value, str) and _ANY_DIGEST_RE.match(value):
        algo = value.split(":", 1)[0]
        if algo != ALGORITHM:
            raise InvalidDigestError(f"{what} {value[:80]!r}: unsupported digest algorithm "
                                     f"{algo!r} (llb handles sha256 only)")
    raise InvalidDigestError(f"{what} {str(value)[:80]!r} is not a sha256 digest "
                             "(sha256:<64 lowercase hex digits>)")


def is_digest(value: object) -> bool:
    """True if `value` is a well-formed sha256 digest."""
    return isinstance(value, str) and bool(_DIGEST_RE.match(value))


def digest_hex(digest: str) -> str:
    """The 64 hex digits of a checked digest (its file name in a blob store)."""
    return check_digest(digest)[7:]


def sha256_digest(data: bytes) -> str:
    """The digest of `data`."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def verify_bytes(data: bytes, digest: str, size: int | None, what: str) -> None:
    """DigestMismatchError unless `data` has this size (when given) and digest."""
    if size is not None and len(data) != size:
        raise DigestMismatchError(f"{what}: size mismatch: {len(data)} bytes, expected {size}")
    got = sha256_digest(data)
    if got != digest:
        raise DigestMismatchError(f"{what}: digest mismatch: got {got}, expected {digest}")


class Digester:
    """A running sha256 and byte count over data fed in pieces."""

    __slots__ = ("_hash", "size")

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.size = 0

    def update(self, data: bytes | memoryview) -> None:
        """Feed the next piece."""
        self._hash.update(data)
        self.size += len(data)

    def digest(self) -> str:
        """The digest of everything fed so far."""
        return "sha256:" + self._hash.hexdigest()

    def check(self, digest: str, size: int | None, what: str) -> None:
        """DigestMismatchError unless what was fed has this size (when given) and digest."""
        if size is not None and self.size != size:
            raise DigestMismatchError(f"{what}: size mismatch: {self.size} bytes, expected {size}")
        got = self.digest()
        if got != digest:
            raise DigestMismatchError(f"{what}: digest mismatch: got {got}, expected {digest}")
