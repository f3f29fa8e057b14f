"""Real registries for tests: Debian's `docker-registry` started on 127.0.0.1 with a free port
and a temporary storage directory, open, behind htpasswd basic auth, or behind Bearer tokens
from a small token service started here (as the registry's `auth.token` config expects: a
JWT signed with a key whose certificate is in the registry's rootcertbundle).

Loaded as a pytest plugin by tests/conftest.py: the session fixtures `registry`,
`basic_registry` and `token_registry` are available to every test; each skips when
docker-registry is not installed (`make test` installs it)."""

from __future__ import annotations

import base64
import datetime
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qs, urlparse

import pytest

REGISTRY_BIN = "docker-registry"
USER, PASSWORD = "llb-user", "llb-secret"
IDENTITY_HEADER = "X-Llb-Test-Registry"


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on (right now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Registry:
    """A running docker-registry; `host` is `127.0.0.1:PORT`."""

    def __init__(self, workdir: Path, auth: dict[str, Any] | None = None):
        self.workdir = workdir
        # every answer carries this header: start-up knows it reached this process, not
        # another worker's registry that took the port between free_port() and our bind
        self.identity = uuid.uuid4().hex
        workdir.mkdir(parents=True, exist_ok=True)
        self.storage = workdir / "storage"
        self.log = workdir / "registry.log"
        for attempt in range(3):
            self.port = free_port()
            self.host = f"127.0.0.1:{self.port}"
            config = workdir / "config.yml"
            config.write_text(json.dumps({  # YAML is a superset of JSON
                "version": 0.1,
                "log": {"level": "warn", "accesslog": {"disabled": True}},
                "storage": {"filesystem": {"rootdirectory": str(self.storage)},
                            "delete": {"enabled": True},
                            "maintenance": {"uploadpurging": {"enabled": False}}},
                "http": {"addr": self.host, "secret": "llb-test-secret",
                         "headers": {IDENTITY_HEADER: [self.identity]}},
                **({"auth": auth} if auth else {}),
            }))
            with open(self.log, "ab") as log:
                self._proc = subprocess.Popen([REGISTRY_BIN, "serve", str(config)], stdout=log,
                                              stderr=subprocess.STDOUT, start_new_session=True)
            if self._wait_ready():
                return
            self.stop()
            if "address already in use" not in self.log.read_text(errors="replace"):
                break
        raise RuntimeError(f"docker-registry did not start: {self.log.read_text()[-2000:]}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1) as answer:
                    headers = answer.headers
            except urllib.error.HTTPError as denied:  # 401: up, and asking for auth
                headers = denied.headers
            except OSError:
                time.sleep(0.05)
                continue
            if headers.get(IDENTITY_HEADER) == self.identity:
                return True
            time.sleep(0.05)  # another process holds the port: ours will exit, and we retry
        return False

    def stop(self) -> None:
        """Stop the registry process (by its pid) and wait for it."""
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


@dataclass
class TokenService:
    """A token service for Bearer auth: GET /token?service=&scope=... with Basic auth of
    USER/PASSWORD grants every action asked for; anonymous requests get no access; a wrong
    password is a 401. `requests` records (user, scopes) of every token issued."""

    workdir: Path
    service: str = "llb-test-registry"
    issuer: str = "llb-test-issuer"
    requests: list[tuple[str, list[str]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.issuer)])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(self._key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=30))
                .sign(self._key, hashes.SHA256()))
        self._x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
        self.bundle = self.workdir / "token-bundle.pem"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.bundle.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                service._answer(self)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self._server.server_address[1]}/token"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    def _answer(self, h: BaseHTTPRequestHandler) -> None:
        query = parse_qs(urlparse(h.path).query)
        user = ""
        header = h.headers.get("Authorization", "")
        if header.startswith("Basic "):
            given = base64.b64decode(header[6:]).decode()
            if given != f"{USER}:{PASSWORD}":
                h.send_response(401)
                h.send_header("Content-Length", "0")
                h.end_headers()
                return
            user = USER
        scopes = [s for v in query.get("scope", []) for s in v.split(" ") if s]
        self.requests.append((user, scopes))
        access = []
        for scope in scopes if user else []:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        body = json.dumps({"token": self.token(user, access), "expires_in": 300}).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def token(self, subject: str, access: list[dict[str, Any]]) -> str:
        """A JWT the registry accepts (ES256, the signing certificate in x5c)."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        now = int(time.time())
        header = {"typ": "JWT", "alg": "ES256", "x5c": [self._x5c]}
        claims = {"iss": self.issuer, "sub": subject, "aud": self.service, "exp": now + 300,
                  "nbf": now - 10, "iat": now, "jti": uuid.uuid4().hex, "access": access}
        signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
        der = self._key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return f"{signing_input}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _need_registry() -> None:
    if shutil.which(REGISTRY_BIN) is None:
        pytest.skip(f"{REGISTRY_BIN} is not installed (apt-get install docker-registry; "
                    "`make test` does)")


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """An open registry (no auth) on 127.0.0.1."""
    _need_registry()
    reg = Registry(tmp_path_factory.mktemp("registry"))
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry requiring htpasswd basic auth of USER/PASSWORD."""
    _need_registry()
    import bcrypt

    work = tmp_path_factory.mktemp("registry-basic")
    htpasswd = work / "htpasswd"
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4, prefix=b"2a"))
    htpasswd.write_text(f"{USER}:{hashed.decode()}\n")
    reg = Registry(work, {"htpasswd": {"realm": "llb-test", "path": str(htpasswd)}})
    yield reg
    reg.stop()


@dataclass
class TokenRegistry:
    """A registry behind Bearer tokens, and the token service issuing them."""

    registry: Registry
    tokens: TokenService

    @property
    def host(self) -> str:
        return self.registry.host


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenRegistry]:
    """A registry requiring Bearer tokens from a TokenService (USER/PASSWORD)."""
    _need_registry()
    work = tmp_path_factory.mktemp("registry-token")
    tokens = TokenService(work)
    reg = Registry(work, {"token": {"realm": tokens.realm, "service": tokens.service,
                                    "issuer": tokens.issuer,
                                    "rootcertbundle": str(tokens.bundle)}})
    yield TokenRegistry(reg, tokens)
    reg.stop()
    tokens.stop()


def docker_config(directory: Path, auths: dict[str, dict[str, str]]) -> Path:
    """Write `directory/config.json` with these `auths` (for DOCKER_CONFIG)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config.json"
    path.write_text(json.dumps({"auths": auths}))
    os.chmod(path, 0o600)
    return path
