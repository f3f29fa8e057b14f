"""Credentials from Docker's config file and the parts of the auth flow that need no server:
challenge parsing, scopes, token caching, plain HTTP for loopback and insecure registries."""

from __future__ import annotations

import base64
import json
import threading
from pathlib import Path

import pytest

from llb.content.auth import (Authenticator, TokenRequest, merge_scopes, parse_challenges,
                              repository_scope)
from llb.content.credentials import Credential, DockerCredentials, registry_key
from llb.content.errors import AuthError, CredentialsError, ServerError


def _write(directory: Path, obj: object) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(obj))


def test_docker_config_auth_forms(tmp_path: Path) -> None:
    auth = base64.b64encode(b"alice:pa:ss").decode()
    _write(tmp_path / "d", {"auths": {
        "https://index.docker.io/v1/": {"auth": auth},
        "http://localhost:5000": {"username": "bob", "password": "pw"},
        "ghcr.io": {"identitytoken": "refresh-me"},
        "empty.example": {},
    }, "credsStore": "desktop"})
    creds = DockerCredentials.load({"DOCKER_CONFIG": str(tmp_path / "d")})
    assert creds.get("docker.io") == Credential("alice", "pa:ss")
    assert creds.get("localhost:5000") == Credential("bob", "pw")
    assert creds.get("ghcr.io") == Credential("", "", "refresh-me")
    assert creds.get("empty.example") is None and creds.get("quay.io") is None
    assert "pw" not in repr(creds.get("localhost:5000"))


def test_docker_config_defaults_to_home(tmp_path: Path) -> None:
    _write(tmp_path / ".docker", {"auths": {"r.example": {"username": "u", "password": "p"}}})
    assert DockerCredentials.load({"HOME": str(tmp_path)}).get("r.example") == Credential("u", "p")
    assert DockerCredentials.load({"HOME": str(tmp_path / "none")}).get("r.example") is None


@pytest.mark.parametrize("content, message", [
    (b"{not json", "not valid JSON"),
    (b"[]", "not a JSON object"),
    (json.dumps({"auths": []}).encode(), "'auths' is not an object"),
    (json.dumps({"auths": {"r": "x"}}).encode(), "auths['r'] is not an object"),
    (json.dumps({"auths": {"r": {"auth": "%%%"}}}).encode(), "auth is not base64 of user:pass"),
    (json.dumps({"auths": {"r": {"auth": base64.b64encode(b"nocolon").decode()}}}).encode(),
     "auth is not base64 of user:password"),
    (json.dumps({"auths": {"r": {"username": 5}}}).encode(), "username is not a string"),
])
def test_a_malformed_docker_config_names_the_file(tmp_path: Path, content: bytes,
                                                  message: str) -> None:
    (tmp_path / "config.json").write_bytes(content)
    with pytest.raises(CredentialsError) as info:
        DockerCredentials.load({"DOCKER_CONFIG": str(tmp_path)})
    assert str(info.value).startswith(str(tmp_path / "config.json"))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_registry_keys() -> None:
    assert registry_key("https://index.docker.io/v1/") == "docker.io"
    assert registry_key("registry-1.docker.io") == "docker.io"
    assert registry_key("http://LocalHost:5000/") == "localhost:5000"


def test_challenge_parsing() -> None:
    (c,) = parse_challenges('Bearer realm="https://auth.example/token",service="registry.'
                            'example",scope="repository:a/b:pull,push"')
    assert c.scheme == "bearer"
    assert c.params == {"realm": "https://auth.example/token", "service": "registry.example",
                        "scope": "repository:a/b:pull,push"}
    both = parse_challenges('Basic realm="x, y", Bearer realm="http://t/token"')
    assert [(x.scheme, x.params) for x in both] == [("basic", {"realm": "x, y"}),
                                                     ("bearer", {"realm": "http://t/token"})]
    assert parse_challenges("") == []


def test_scopes_merge_per_repository() -> None:
    assert repository_scope("a/b", "pull", "push") == "repository:a/b:pull,push"
    assert merge_scopes(["repository:a:pull", "repository:a:push", "repository:b:pull",
                         "repository:a:pull"]) == ("repository:a:pull,push", "repository:b:pull")


def test_tokens_are_fetched_once_and_cached() -> None:
    calls: list[TokenRequest] = []

    def fetch(req: TokenRequest) -> bytes:
        calls.append(req)
        return json.dumps({"token": f"t{len(calls)}", "expires_in": 300}).encode()

    auth = Authenticator(DockerCredentials({"r": Credential("u", "p")}))
    challenge = 'Bearer realm="http://127.0.0.1:1/token",service="svc",scope="repository:x:pull"'
    scopes = ["repository:x:pull,push"]
    assert auth.header("r", scopes) is None
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(
        auth.answer("r", challenge, scopes, fetch))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["Bearer t1"] * 8 and len(calls) == 1
    assert calls[0].scopes == ("repository:x:pull,push",) and calls[0].service == "svc"
    assert calls[0].credential == Credential("u", "p")
    assert auth.header("r", scopes) == "Bearer t1"
    # a refused token is never offered again
    assert auth.answer("r", challenge, scopes, fetch, refused="Bearer t1") == "Bearer t2"


def test_basic_challenge_and_bad_token_answers() -> None:
    auth = Authenticator(DockerCredentials({"r": Credential("u", "p")}))
    header = auth.answer("r", 'Basic realm="x"', [], lambda req: b"")
    assert header == "Basic " + base64.b64encode(b"u:p").decode()
    assert auth.header("r", []) == header
    with pytest.raises(AuthError, match="refused the credentials in the Docker config"):
        auth.answer("r", 'Basic realm="x"', [], lambda req: b"", refused=header)
    with pytest.raises(AuthError, match="requires credentials"):
        Authenticator(DockerCredentials({})).answer("s", 'Basic realm="x"', [], lambda r: b"")
    with pytest.raises(AuthError, match="unsupported authentication"):
        auth.answer("r", 'Negotiate abc', [], lambda req: b"")
    with pytest.raises(ServerError, match="answered without a token"):
        auth.answer("r", 'Bearer realm="http://127.0.0.1:1/t"', [], lambda req: b"{}")


def test_plain_http_only_for_loopback_and_insecure_registries() -> None:
    from llb.content.transport import Transport

    t = Transport(DockerCredentials({}), insecure=["registry.lan:5000", "other.lan"])
    try:
        assert t.url("127.0.0.1:5000", "/v2/") == "http://127.0.0.1:5000/v2/"
        assert t.url("localhost", "/v2/") == "http://localhost/v2/"
        assert t.url("[::1]:5000", "/v2/") == "http://[::1]:5000/v2/"
        assert t.url("registry.lan:5000", "/v2/") == "http://registry.lan:5000/v2/"
        assert t.url("other.lan:443", "/v2/") == "http://other.lan:443/v2/"
        assert t.url("registry.lan:6000", "/v2/") == "https://registry.lan:6000/v2/"
        assert t.url("ghcr.io", "/v2/") == "https://ghcr.io/v2/"
        assert t.url("docker.io", "/v2/") == "https://registry-1.docker.io/v2/"
    finally:
        t.close()


def test_a_token_request_whose_connection_drops_is_asked_again() -> None:
    """A token service that closes the connection before answering (as an overloaded one
    does) is asked once more; twice is one ConnectionLostError."""
    import json
    import socket
    import threading

    from llb.content.auth import TokenRequest
    from llb.content.credentials import DockerCredentials
    from llb.content.errors import ConnectionLostError
    from llb.content.transport import Transport

    def serve(drops: int) -> tuple[socket.socket, list[int]]:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        seen = [0]

        def loop() -> None:
            while True:
                try:
                    conn, _ = sock.accept()
                except OSError:
                    return
                conn.recv(65536)
                seen[0] += 1
                if seen[0] <= drops:
                    conn.close()  # no answer at all
                    continue
                body = json.dumps({"token": "t0k3n", "expires_in": 60}).encode()
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Connection: close\r\nContent-Length: "
                             + str(len(body)).encode() + b"\r\n\r\n" + body)
                conn.close()

        threading.Thread(target=loop, daemon=True).start()
        return sock, seen

    transport = Transport(DockerCredentials({}), timeout=5)
    try:
        sock, seen = serve(drops=1)
        realm = f"http://127.0.0.1:{sock.getsockname()[1]}/token"
        req = TokenRequest(realm, "svc", ("repository:x:pull",), None)
        assert json.loads(transport._fetch_token(req))["token"] == "t0k3n"  # noqa: SLF001
        assert seen[0] == 2
        sock.close()
        sock, seen = serve(drops=2)
        realm = f"http://127.0.0.1:{sock.getsockname()[1]}/token"
        with pytest.raises(ConnectionLostError, match="token for repository:x:pull"):
            transport._fetch_token(TokenRequest(realm, "svc", ("repository:x:pull",), None))  # noqa: SLF001
        assert seen[0] == 2
        sock.close()
    finally:
        transport.close()
