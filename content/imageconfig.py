"""Image configs (OCI image config, Docker container image v1): the fields llb uses
(platform, Env, WorkingDir, User, Entrypoint, Cmd, Labels, ExposedPorts, rootfs.diff_ids,
history, created) checked on the way in, the rest kept as it was so nothing is lost when a
config is rewritten, and written canonically."""

from __future__ import annotations

import copy
from typing import Any, Iterable, Mapping, Sequence

from llb.content.digest import is_digest, sha256_digest, verify_bytes
from llb.content.errors import InvalidManifestError
from llb.content.jsondoc import canonical_json, load_json
from llb.content.manifest import Manifest
from llb.content.platforms import Platform

MAX_CONFIG_SIZE = 8 << 20
_STR_LISTS = ("Env", "Entrypoint", "Cmd", "Shell", "OnBuild")
_STR_FIELDS = ("User", "WorkingDir", "StopSignal")
_SET_FIELDS = ("ExposedPorts", "Volumes")


class ImageConfig:
    """A checked image config. `raw` is the whole JSON object (do not modify it: use
    `replace`); the properties read the fields llb uses."""

    __slots__ = ("raw",)

    def __init__(self, raw: dict[str, Any], what: str = "image config"):
        _check(raw, what)
        self.raw = raw

    @classmethod
    def from_bytes(cls, data: bytes, what: str = "image config", *, digest: str | None = None,
                   size: int | None = None) -> "ImageConfig":
        """Parse hostile bytes, checked against the digest and size naming them when given."""
        if digest is not None:
            verify_bytes(data, digest, size, what)
        if len(data) > MAX_CONFIG_SIZE:
            raise InvalidManifestError(f"{what}: {len(data)} bytes, more than a config may have")
        obj = load_json(data, what)
        if not isinstance(obj, dict):
            raise InvalidManifestError(f"{what}: not a JSON object")
        return cls(obj, what)

    @classmethod
    def new(cls, platform: Platform, diff_ids: Sequence[str] = (), *,
            env: Sequence[str] = (), working_dir: str = "", user: str = "",
            entrypoint: Sequence[str] | None = None, cmd: Sequence[str] | None = None,
            labels: Mapping[str, str] | None = None, exposed_ports: Iterable[str] = (),
            history: Sequence[Mapping[str, Any]] = (), created: str | None = None) -> "ImageConfig":
        """A config for an image llb built (Docker's field names, as OCI uses them)."""
        config: dict[str, Any] = {}
        if env:
            config["Env"] = list(env)
        if working_dir:
            config["WorkingDir"] = working_dir
        if user:
            config["User"] = user
        if entrypoint is not None:
            config["Entrypoint"] = list(entrypoint)
        if cmd is not None:
            config["Cmd"] = list(cmd)
        if labels:
            config["Labels"] = dict(labels)
        ports = sorted(set(exposed_ports))
        if ports:
            config["ExposedPorts"] = {p: {} for p in ports}
        raw: dict[str, Any] = {**platform.to_json(), "config": config,
                               "rootfs": {"type": "layers", "diff_ids": list(diff_ids)}}
        if history:
            raw["history"] = [dict(h) for h in history]
        if created is not None:
            raw["created"] = created
        return cls(raw)

    def replace(self, **fields: Any) -> "ImageConfig":
        """A copy with top-level fields replaced (`config=`, `rootfs=`, `history=`, ...);
        a value of None removes the field."""
        raw = copy.deepcopy(self.raw)
        for key, value in fields.items():
            if value is None:
                raw.pop(key, None)
            else:
                raw[key] = value
        return ImageConfig(raw)

    def to_bytes(self) -> bytes:
        """Canonical bytes."""
        return canonical_json(self.raw)

    def digest(self) -> str:
        """The digest of the canonical bytes."""
        return sha256_digest(self.to_bytes())

    @property
    def platform(self) -> Platform:
        return Platform(self.raw["os"], self.raw["architecture"], self.raw.get("variant", ""),
                        self.raw.get("os.version", ""))

    @property
    def env(self) -> list[str]:
        return list(self._config().get("Env") or [])

    @property
    def working_dir(self) -> str:
        return str(self._config().get("WorkingDir") or "")

    @property
    def user(self) -> str:
        return str(self._config().get("User") or "")

    @property
    def entrypoint(self) -> list[str] | None:
        v = self._config().get("Entrypoint")
        return list(v) if v is not None else None

    @property
    def cmd(self) -> list[str] | None:
        v = self._config().get("Cmd")
        return list(v) if v is not None else None

    @property
    def labels(self) -> dict[str, str]:
        return dict(self._config().get("Labels") or {})

    @property
    def exposed_ports(self) -> list[str]:
        return sorted(self._config().get("ExposedPorts") or {})

    @property
    def diff_ids(self) -> list[str]:
        return list(self.raw["rootfs"]["diff_ids"])

    @property
    def history(self) -> list[dict[str, Any]]:
        return [dict(h) for h in self.raw.get("history") or []]

    @property
    def created(self) -> str | None:
        v = self.raw.get("created")
        return v if isinstance(v, str) else None

    def check_manifest(self, manifest: Manifest, what: str = "image") -> None:
        """InvalidManifestError unless this config describes as many layers as `manifest`
        has (one diff_id per layer)."""
        if len(self.diff_ids) != len(manifest.layers):
            raise InvalidManifestError(f"{what}: config lists {len(self.diff_ids)} diff_ids "
                                       f"but the manifest has {len(manifest.layers)} layers")

    def _config(self) -> dict[str, Any]:
        c = self.raw.get("config")
        return c if isinstance(c, dict) else {}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ImageConfig) and other.raw == self.raw

    def __hash__(self) -> int:
        return hash(self.to_bytes())

    def __repr__(self) -> str:
        return f"ImageConfig({self.platform}, {len(self.diff_ids)} layers)"


def _check(raw: object, what: str) -> None:
    if not isinstance(raw, dict):
        raise InvalidManifestError(f"{what}: not a JSON object")
    for key in ("os", "architecture"):
        if not isinstance(raw.get(key), str) or not raw.get(key):
            raise InvalidManifestError(f"{what}: {key!r} missing or not a string")
    for key in ("variant", "os.version", "created", "author"):
        if key in raw and raw[key] is not None and not isinstance(raw[key], str):
            raise InvalidManifestError(f"{what}: {key!r} is not a string")
    rootfs = raw.get("rootfs")
    if not isinstance(rootfs, dict) or rootfs.get("type") != "layers":
        raise InvalidManifestError(f"{what}: rootfs missing or not of type 'layers'")
    diff_ids = rootfs.get("diff_ids")
    if not isinstance(diff_ids, list) or not all(is_digest(d) for d in diff_ids):
        raise InvalidManifestError(f"{what}: rootfs.diff_ids is not a list of sha256 digests")
    history = raw.get("history")
    if history is not None and (not isinstance(history, list)
                                or not all(isinstance(h, dict) for h in history)):
        raise InvalidManifestError(f"{what}: history is not a list of objects")
    config = raw.get("config")
    if config is None:
        return
    if not isinstance(config, dict):
        raise InvalidManifestError(f"{what}: config is not an object")
    for key in _STR_LISTS:
        v = config.get(key)
        if v is not None and (not isinstance(v, list) or not all(isinstance(s, str) for s in v)):
            raise InvalidManifestError(f"{what}: config.{key} is not a list of strings")
    for key in _STR_FIELDS:
        v = config.get(key)
        if v is not None and not isinstance(v, str):
            raise InvalidManifestError(f"{what}: config.{key} is not a string")
    labels = config.get("Labels")
    if labels is not None and (not isinstance(labels, dict) or not all(
            isinstance(v, str) for v in labels.values())):
        raise InvalidManifestError(f"{what}: config.Labels is not a map of strings")
    for key in _SET_FIELDS:
        v = config.get(key)
        if v is not None and not isinstance(v, dict):
            raise InvalidManifestError(f"{what}: config.{key} is not an object")
