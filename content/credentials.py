"""Registry credentials from Docker's config file (`$DOCKER_CONFIG/config.json`, else
`~/.docker/config.json`): its `auths` map, each entry with `auth` (base64 `user:password`)
or `username`/`password`, and optionally an `identitytoken` (an OAuth refresh token).
Credential helpers (`credsStore`, `credHelpers`) are not run."""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Protocol

from llb.content.errors import CredentialsError

_HUB_ALIASES = ("index.docker.io", "registry-1.docker.io", "registry.hub.docker.com",
                "docker.io")


@dataclass(frozen=True)
class Credential:
    """A user name and password (or an identity token, sent as the token service's
    refresh token)."""

    username: str
    password: str
    identity_token: str = ""

    def __repr__(self) -> str:  # never print a secret
        return f"Credential(username={self.username!r})"


class CredentialSource(Protocol):
    """Anything that answers "which credential for this registry?"."""

    def get(self, registry: str) -> Credential | None:
        """The credential for `registry` (`host[:port]`, docker.io for Docker Hub), or None."""
        ...


def registry_key(server: str) -> str:
    """The registry a config.json key names: scheme and path dropped, lowercased, Docker
    Hub's aliases (https://index.docker.io/v1/) folded into docker.io."""
    s = server.strip().lower()
    for prefix in ("https://", "http://"):
        if s.startswith(prefix):
            s = s[len(prefix):]
    s = s.split("/", 1)[0]
    return "docker.io" if s in _HUB_ALIASES else s


class DockerCredentials:
    """Credentials by registry, as read from a Docker config file."""

    def __init__(self, auths: Mapping[str, Credential] | None = None, path: str = ""):
        self._auths = {registry_key(k): v for k, v in (auths or {}).items()}
        self.path = path

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None) -> "DockerCredentials":
        """Read `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`; none is no
        credentials, a malformed one is a CredentialsError naming the file."""
        env = os.environ if env is None else env
        base = env.get("DOCKER_CONFIG") or os.path.join(
            env.get("HOME") or str(Path.home()), ".docker")
        path = os.path.join(base, "config.json")
        try:
            with open(path, "rb") as f:
                data = f.read(4 << 20)
        except FileNotFoundError:
            return cls({}, path)
        except OSError as e:
            raise CredentialsError(f"{path}: cannot read: {e.strerror}", path=path) from None
        return cls.parse(data, path)

    @classmethod
    def parse(cls, data: bytes, path: str) -> "DockerCredentials":
        """Credentials from the bytes of a config.json (`path` names it in errors)."""
        from llb.content.jsondoc import load_json

        def error(message: str) -> CredentialsError:
            return CredentialsError(message, path=path)

        obj = load_json(data, path, error)
        if not isinstance(obj, dict):
            raise error(f"{path}: not a JSON object")
        auths = obj.get("auths")
        if auths is None:
            auths = {}
        if not isinstance(auths, dict):
            raise error(f"{path}: 'auths' is not an object")
        out = {}
        for server, entry in auths.items():
            cred = _entry(entry, f"{path}: auths[{server!r}]", path)
            if cred is not None:
                out[server] = cred
        return cls(out, path)

    def get(self, registry: str) -> Credential | None:
        """The credential for `registry`, or None."""
        return self._auths.get(registry_key(registry))


def _entry(entry: object, what: str, path: str) -> Credential | None:
    if not isinstance(entry, dict):
        raise CredentialsError(f"{what} is not an object", path=path)
    fields = {}
    for key in ("auth", "username", "password", "identitytoken"):
        v = entry.get(key) or ""
        if not isinstance(v, str):
            raise CredentialsError(f"{what}: {key} is not a string", path=path)
        fields[key] = v
    user, password = fields["username"], fields["password"]
    if fields["auth"]:
        try:
            decoded = base64.b64decode(fields["auth"], validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise CredentialsError(f"{what}: auth is not base64 of user:password",
                                   path=path) from None
        user, sep, password = decoded.partition(":")
        if not sep:
            raise CredentialsError(f"{what}: auth is not base64 of user:password", path=path)
    if not user and not fields["identitytoken"]:
        return None
    return Credential(user, password, fields["identitytoken"])
