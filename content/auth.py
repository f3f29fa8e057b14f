"""Registry authentication as Docker does it: a 401 carries a `WWW-Authenticate` challenge;
`Basic` is answered with the user's credentials, `Bearer` with a token fetched from the
challenge's realm for the scopes the request needs (`repository:NAME:pull,push`). Tokens
are cached by registry and scope until they expire, so one pull asks the token service
once. The HTTP request for a token is the transport's job (a TokenFetcher)."""

from __future__ import annotations

import base64
import re
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable

from llb.content.credentials import Credential, CredentialSource
from llb.content.errors import AuthError, ServerError

_TOKEN_RE = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_PARAM_RE = re.compile(rf'\s*({_TOKEN_RE})\s*=\s*("(?:[^"\\]|\\.)*"|{_TOKEN_RE})\s*(?:,|$)')
_SCHEME_RE = re.compile(rf"\s*,?\s*({_TOKEN_RE})(?:\s+|$)")
_DEFAULT_TOKEN_LIFETIME = 60  # seconds, when the token service does not say
_EXPIRY_MARGIN = 10


@dataclass(frozen=True)
class Challenge:
    """One challenge of a WWW-Authenticate header: scheme (lowercased) and parameters."""

    scheme: str
    params: dict[str, str]


def parse_challenges(header: str) -> list[Challenge]:
    """The challenges in a WWW-Authenticate value (RFC 7235), e.g.
    `Bearer realm="https://auth/token",service="reg",scope="repository:a:pull"`."""
    out: list[Challenge] = []
    pos = 0
    while pos < len(header):
        m = _SCHEME_RE.match(header, pos)
        if not m:
            break
        scheme, pos = m.group(1).lower(), m.end()
        params: dict[str, str] = {}
        while True:
            p = _PARAM_RE.match(header, pos)
            if not p:
                break
            value = p.group(2)
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            params[p.group(1).lower()] = value
            pos = p.end()
        out.append(Challenge(scheme, params))
    return out


def repository_scope(repository: str, *actions: str) -> str:
    """`repository:NAME:pull,push`."""
    return f"repository:{repository}:{','.join(actions)}"


def merge_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """Scopes with the actions of one resource merged (`pull` + `push` → `pull,push`)."""
    merged: dict[str, set[str]] = {}
    for scope in scopes:
        resource, sep, actions = scope.rpartition(":")
        if not sep:
            resource, actions = scope, ""
        merged.setdefault(resource, set()).update(a for a in actions.split(",") if a)
    return tuple(sorted(f"{r}:{','.join(sorted(a))}" for r, a in merged.items()))


@dataclass(frozen=True)
class TokenRequest:
    """What to ask a token service: realm URL, service and scopes, with the credential (if
    any) to authenticate with: an identity token is a refresh token (OAuth2 POST), a
    password is Basic auth on a GET."""

    realm: str
    service: str
    scopes: tuple[str, ...]
    credential: Credential | None


TokenFetcher = Callable[[TokenRequest], bytes]


class Authenticator:
    """Authorization headers per registry host, learnt from the challenges it sends."""

    def __init__(self, credentials: CredentialSource):
        self._credentials = credentials
        self._challenge: dict[str, Challenge] = {}
        self._tokens: dict[tuple[str, tuple[str, ...]], tuple[str, float]] = {}
        self._fetching: dict[tuple[str, tuple[str, ...]], threading.Lock] = {}
        self._lock = threading.Lock()

    def header(self, registry: str, scopes: Iterable[str]) -> str | None:
        """The Authorization header to send up front, if this registry asked for one
        before and what it needs is known (a cached token covering `scopes`)."""
        challenge = self._challenge.get(registry)
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            return self._basic(registry)
        key = (registry, merge_scopes(scopes))
        with self._lock:
            cached = self._tokens.get(key)
        if cached is not None and cached[1] > time.monotonic():
            return f"Bearer {cached[0]}"
        return None

    def answer(self, registry: str, www_authenticate: str, scopes: Iterable[str],
               fetch: TokenFetcher, refused: str | None = None) -> str:
        """The Authorization header answering a 401's challenge (`refused` is the header
        the refused request carried, never offered again); AuthError when there is nothing
        to answer it with. Threads answering at once fetch one token between them."""
        challenges = parse_challenges(www_authenticate)
        by_scheme = {c.scheme: c for c in challenges}
        challenge = by_scheme.get("bearer") or by_scheme.get("basic")
        if challenge is None:
            raise AuthError(f"registry {registry} asks for unsupported authentication "
                            f"{www_authenticate[:80]!r}")
        self._challenge[registry] = challenge
        if challenge.scheme == "basic":
            header = self._basic(registry)
            if header is None:
                raise AuthError(f"registry {registry} requires credentials: none for it in "
                                "the Docker config (docker login)")
            if header == refused:
                raise AuthError(f"registry {registry} refused the credentials in the Docker "
                                "config")
            return header
        realm = challenge.params.get("realm", "")
        if not realm.startswith(("http://", "https://")):
            raise AuthError(f"registry {registry}: bearer challenge without a usable realm")
        key = (registry, merge_scopes(scopes))
        with self._lock:
            fetching = self._fetching.setdefault(key, threading.Lock())
        with fetching:
            with self._lock:
                cached = self._tokens.get(key)
            if cached is not None and cached[1] > time.monotonic() \
                    and f"Bearer {cached[0]}" != refused:
                return f"Bearer {cached[0]}"  # another thread fetched it meanwhile
            wanted = list(key[1])
            if challenge.params.get("scope"):
                wanted += challenge.params["scope"].split(" ")
            request = TokenRequest(realm, challenge.params.get("service", ""),
                                   merge_scopes(wanted), self._credentials.get(registry))
            token, lifetime = _parse_token(fetch(request), realm)
            with self._lock:
                self._tokens[key] = (token, time.monotonic() + max(lifetime - _EXPIRY_MARGIN, 1))
        return f"Bearer {token}"

    def _basic(self, registry: str) -> str | None:
        cred = self._credentials.get(registry)
        if cred is None or not cred.username:
            return None
        raw = f"{cred.username}:{cred.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


def _parse_token(data: bytes, realm: str) -> tuple[str, int]:
    from llb.content.jsondoc import load_json

    obj = load_json(data, f"token service {realm}", ServerError)
    token = obj.get("token") or obj.get("access_token") if isinstance(obj, dict) else None
    if not isinstance(token, str) or not token:
        raise ServerError(f"token service {realm} answered without a token")
    lifetime = obj.get("expires_in", _DEFAULT_TOKEN_LIFETIME)
    if not isinstance(lifetime, int) or isinstance(lifetime, bool) or lifetime <= 0:
        lifetime = _DEFAULT_TOKEN_LIFETIME
    return token, lifetime
