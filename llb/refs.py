"""Image reference normalisation, following docker/distribution's reference package.

`busybox` becomes `docker.io/library/busybox:latest`; a digest-pinned reference keeps its
digest (and its tag if it has one) and gets no `:latest`.
"""

from __future__ import annotations

import re

from llb.errors import DefinitionError

DEFAULT_DOMAIN = "docker.io"
_LEGACY_DOMAIN = "index.docker.io"
_OFFICIAL_PREFIX = "library/"

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
# patterns, compiled on first use (re's cache): compiling them at import cost every command
_PATH_RE = rf"^{_COMPONENT}(?:/{_COMPONENT})*$"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_RE = (
    rf"^(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?$"
)
_TAG_RE = r"^[\w][\w.-]{0,127}$"
_DIGEST_RE = r"^sha256:[0-9a-f]{64}$"
_NAME_MAX = 255


def normalize_image_ref(ref: str) -> str:
    """The fully qualified form of an image reference, or DefinitionError if it is invalid."""
    if not isinstance(ref, str) or not ref:
        raise DefinitionError(f"invalid image reference {ref!r}: empty")
    name, digest = ref, ""
    if "@" in name:
        name, _, digest = name.partition("@")
        if not re.match(_DIGEST_RE, digest):
            raise DefinitionError(f"invalid image reference {ref!r}: bad digest {digest!r}")
    tag = ""
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
        if not re.match(_TAG_RE, tag):
            raise DefinitionError(f"invalid image reference {ref!r}: bad tag {tag!r}")
    domain, path = _split_domain(name)
    if not re.match(_DOMAIN_RE, domain):
        raise DefinitionError(f"invalid image reference {ref!r}: bad registry {domain!r}")
    if path != path.lower():
        raise DefinitionError(f"invalid image reference {ref!r}: repository name must be lowercase")
    if not re.match(_PATH_RE, path):
        raise DefinitionError(f"invalid image reference {ref!r}: bad repository name {path!r}")
    full = f"{domain}/{path}"
    if len(full) > _NAME_MAX:
        raise DefinitionError(f"invalid image reference {ref!r}: name longer than {_NAME_MAX}")
    if tag:
        full += ":" + tag
    if digest:
        full += "@" + digest
    if not tag and not digest:
        full += ":latest"
    return full


def _split_domain(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if not sep or ("." not in first and ":" not in first and first != "localhost"
                   and first.lower() == first):
        domain, path = DEFAULT_DOMAIN, name
    else:
        domain, path = first, rest
    if domain == _LEGACY_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = _OFFICIAL_PREFIX + path
    return domain, path
