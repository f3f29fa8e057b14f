"""HTTP to registries: one httpx client (connection pooling, HTTP/1.1, thread-safe, with
timeouts per phase), the distribution API's base URLs (plain HTTP for loopback and for
registries named insecure), authentication on a 401, and every failure turned into one
typed, one-line RegistryError. httpx is imported here only, so builds that use no images
never load it."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Container, Iterable, Iterator, Mapping, Union

import httpx

from llb.content.auth import Authenticator, TokenRequest
from llb.content.credentials import CredentialSource
from llb.content.errors import (AuthError, ConnectionLostError, NotFoundError, RegistryError,
                                RegistryTimeoutError, ServerError, UnreachableError)
from llb.content.reference import DOCKER_HUB_HOST
from llb.refs import DEFAULT_DOMAIN

USER_AGENT = "llb/0.1"
DEFAULT_TIMEOUT = 30.0
# Bytes one read of a response body asks the socket for. httpcore (httpx's HTTP/1.1 layer)
# reads 64 KiB at a time and runs h11's parser and httpx's decoders once per read: on a
# blob of hundreds of MiB that Python work costs more CPU than hashing the blob. 1 MiB reads
# cut it sixteenfold (a 580 MB pull: 1.7 s of CPU for the download before, 1.1 s after).
# The knob is httpcore's class attribute; an httpcore without it reads as it always did.
READ_SIZE = 1 << 20
_LOOPBACK = ("localhost", "127.0.0.1", "::1", "[::1]")

# a request body: bytes, or a function making a fresh iterator (called again on a retry)
Body = Union[bytes, Callable[[], Iterator[bytes]], None]


def _read_size() -> None:
    """Have httpcore read response bodies READ_SIZE bytes at a time (see READ_SIZE)."""
    try:
        from httpcore._sync.http11 import HTTP11Connection
    except ImportError:  # another httpcore layout: its own read size
        return
    if isinstance(getattr(HTTP11Connection, "READ_NUM_BYTES", None), int) and \
            HTTP11Connection.READ_NUM_BYTES < READ_SIZE:
        HTTP11Connection.READ_NUM_BYTES = READ_SIZE


_read_size()


def host_of(registry: str) -> str:
    """`127.0.0.1` from `127.0.0.1:5000`, `::1` from `[::1]:5000`."""
    if registry.startswith("["):
        return registry[1:].split("]", 1)[0]
    return registry.rsplit(":", 1)[0] if registry.count(":") == 1 else registry


class Transport:
    """Requests to registries, authenticated and with errors mapped. `insecure` names
    registries (`host` or `host:port`) spoken to over plain HTTP, as loopback ones are."""

    def __init__(self, credentials: CredentialSource, *, insecure: Iterable[str] = (),
                 timeout: float = DEFAULT_TIMEOUT, connect_timeout: float | None = None):
        self.timeout = timeout
        self.auth = Authenticator(credentials)
        self._insecure = {h.strip().lower() for h in insecure if h.strip()}
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=connect_timeout or min(timeout, 10.0)),
            follow_redirects=True, headers={"User-Agent": USER_AGENT},
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16))

    def plain_http(self, registry: str) -> bool:
        """True when this registry is spoken to over HTTP rather than HTTPS."""
        r = registry.lower()
        return host_of(r) in _LOOPBACK or r in self._insecure or host_of(r) in self._insecure

    def url(self, registry: str, path: str) -> str:
        """The absolute URL of an API path (`/v2/...`) on `registry` (docker.io's API is
        served by registry-1.docker.io)."""
        scheme = "http" if self.plain_http(registry) else "https"
        host = DOCKER_HUB_HOST if registry == DEFAULT_DOMAIN else registry
        return f"{scheme}://{host}{path}"

    @contextmanager
    def stream(self, method: str, registry: str, target: str, *, scopes: Iterable[str],
               what: str, ok: Container[int] = (200,), headers: Mapping[str, str] | None = None,
               body: Body = None) -> Iterator[httpx.Response]:
        """Send a request and yield the response with its body unread (closed after).
        `target` is an API path or an absolute URL (an upload location). A 401 is answered
        once with credentials or a token; statuses outside `ok` become typed errors naming
        `what` was asked for."""
        scopes = tuple(scopes)
        url = target if target.startswith(("http://", "https://")) else self.url(registry, target)
        sent_auth = self.auth.header(registry, scopes)
        response = self._send(method, url, registry, headers, body, sent_auth, what)
        try:
            if response.status_code == 401:
                challenge = response.headers.get("WWW-Authenticate", "")
                message = _error_text(response)
                response.close()
                if not challenge:
                    raise AuthError(f"{what}: registry {registry} refused access{message}")
                try:
                    answer = self.auth.answer(registry, challenge, scopes, self._fetch_token,
                                              refused=sent_auth)
                except AuthError as e:
                    raise AuthError(f"{what}: {e}") from None
                response = self._send(method, url, registry, headers, body, answer, what)
            if response.status_code not in ok:
                raise _status_error(response, registry, what)
            yield response
        finally:
            response.close()

    def request(self, method: str, registry: str, target: str, *, scopes: Iterable[str],
                what: str, ok: Container[int] = (200,), headers: Mapping[str, str] | None = None,
                body: Body = None) -> httpx.Response:
        """Like `stream`, with the body read into the response."""
        with self.stream(method, registry, target, scopes=scopes, what=what, ok=ok,
                         headers=headers, body=body) as response:
            try:
                response.read()
            except httpx.HTTPError as e:
                raise self.error(e, registry, what) from None
            return response

    def close(self) -> None:
        """Close pooled connections."""
        self._client.close()

    def _send(self, method: str, url: str, registry: str, headers: Mapping[str, str] | None,
              body: Body, authorization: str | None, what: str) -> httpx.Response:
        all_headers = dict(headers or {})
        if authorization:
            all_headers["Authorization"] = authorization
        content = body() if callable(body) else body
        try:
            request = self._client.build_request(method, url, headers=all_headers,
                                                 content=content)
            return self._client.send(request, stream=True)
        except httpx.HTTPError as e:
            raise self.error(e, registry, what) from None

    def _fetch_token(self, req: TokenRequest) -> bytes:
        what = f"token for {' '.join(req.scopes) or 'registry access'} from {req.realm}"
        cred = req.credential
        for attempt in (1, 2):  # asking for a token changes nothing: a dropped one is asked again
            try:
                if cred is not None and cred.identity_token:
                    form = {"grant_type": "refresh_token", "refresh_token": cred.identity_token,
                            "service": req.service, "scope": " ".join(req.scopes),
                            "client_id": "llb"}
                    response = self._client.post(req.realm, data=form)
                else:
                    params: dict[str, str | list[str]] = {"scope": list(req.scopes)}
                    if req.service:
                        params["service"] = req.service
                    auth = (cred.username, cred.password) if cred and cred.username else None
                    response = self._client.get(req.realm, params=params, auth=auth)
                break
            except (httpx.RemoteProtocolError, httpx.ReadError) as e:
                if attempt == 2:  # the connection broke before an answer, twice
                    raise self.error(e, req.realm, what) from None
            except httpx.HTTPError as e:
                raise self.error(e, req.realm, what) from None
        if response.status_code in (401, 403):
            raise AuthError(f"{what}: the token service refused the credentials"
                            f"{_error_text(response)}")
        if response.status_code != 200:
            raise _status_error(response, req.realm, what)
        return response.content

    def error(self, e: httpx.HTTPError, registry: str, what: str) -> RegistryError:
        """The RegistryError for an httpx failure (timeout, refused, broken connection)."""
        if isinstance(e, httpx.TimeoutException):
            kind = "connect" if isinstance(e, httpx.ConnectTimeout) else "answer"
            return RegistryTimeoutError(f"{what}: registry {registry} did not {kind} within "
                                        f"{self.timeout:g} s")
        if isinstance(e, httpx.ConnectError):
            return UnreachableError(f"{what}: cannot reach registry {registry}: "
                                    f"{_first_line(e)}")
        if isinstance(e, (httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError)):
            return ConnectionLostError(f"{what}: connection to registry {registry} broke: "
                                       f"{_first_line(e)}")
        return ServerError(f"{what}: registry {registry}: {_first_line(e)}")


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else type(e).__name__


def _error_text(response: httpx.Response) -> str:
    """`: CODE: message` from a distribution API error body, or the status phrase."""
    try:
        data = response.read()[:64 << 10]
    except httpx.HTTPError:
        data = b""
    detail = ""
    try:
        import json

        errors = json.loads(data).get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            detail = ": ".join(str(first[k]) for k in ("code", "message") if first.get(k))
    except (ValueError, AttributeError, RecursionError):
        pass
    detail = " ".join(detail.split())[:200]
    return f" ({detail})" if detail else ""


def _status_error(response: httpx.Response, registry: str, what: str) -> RegistryError:
    status = response.status_code
    text = _error_text(response)
    if status in (401, 403):
        return AuthError(f"{what}: registry {registry} denied access (HTTP {status}){text}")
    if status == 404:
        return NotFoundError(f"{what}: not found on registry {registry}{text}")
    if status >= 500:
        return ServerError(f"{what}: registry {registry} failed with HTTP {status}{text}")
    return ServerError(f"{what}: registry {registry} answered HTTP {status}{text}")
