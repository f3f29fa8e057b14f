"""Platforms (os/architecture/variant) as containerd names and matches them: `linux/amd64`,
`linux/arm64` (variant v8 implied), `linux/arm/v7`. The host's platform is the default;
a host runs its own variant and older ones (arm v7 runs v6 and v5, amd64 v3 runs v2, v1)."""

from __future__ import annotations

import platform as _stdlib_platform
from dataclasses import dataclass
from typing import Any, Iterable, Sequence, TypeVar

from llb.content.errors import InvalidManifestError

_ARCH_ALIASES = {
    "x86_64": "amd64", "x86-64": "amd64", "amd64": "amd64",
    "aarch64": "arm64", "arm64": "arm64",
    "i386": "386", "i486": "386", "i586": "386", "i686": "386", "386": "386",
    "armhf": "arm", "armel": "arm", "arm": "arm",
}
_OS_ALIASES = {"macos": "darwin"}

T = TypeVar("T")


@dataclass(frozen=True)
class Platform:
    """A target platform. `variant` is "" where the architecture's default applies."""

    os: str
    architecture: str
    variant: str = ""
    os_version: str = ""
    os_features: tuple[str, ...] = ()

    @classmethod
    def parse(cls, spec: str) -> "Platform":
        """`os/arch[/variant]`, or just `arch` for a Linux one; ValueError when malformed."""
        parts = spec.strip().lower().split("/") if isinstance(spec, str) else []
        if len(parts) == 1 and parts[0]:
            parts = ["linux", parts[0]]
        if not 2 <= len(parts) <= 3 or not all(parts):
            raise ValueError(f"bad platform {spec!r} (use os/arch[/variant], e.g. linux/amd64)")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else "").normalized()

    def normalized(self) -> "Platform":
        """Aliases resolved (x86_64 → amd64, aarch64 → arm64, armhf → arm/v7) and default
        variants dropped (arm64/v8, amd64/v1), so equal platforms compare equal."""
        os_name = _OS_ALIASES.get(self.os.lower(), self.os.lower())
        raw = self.architecture.lower()
        arch = _ARCH_ALIASES.get(raw, raw)
        variant = self.variant.lower()
        if variant and variant[0].isdigit():
            variant = "v" + variant
        if raw == "armhf" and not variant:
            variant = "v7"
        elif raw == "armel" and not variant:
            variant = "v6"
        if arch == "arm64" and variant == "v8":
            variant = ""
        elif arch == "amd64" and variant == "v1":
            variant = ""
        elif arch == "arm" and not variant:
            variant = "v7"
        return Platform(os_name, arch, variant, self.os_version, self.os_features)

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    def to_json(self) -> dict[str, Any]:
        """The OCI `platform` object."""
        out: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        if self.os_version:
            out["os.version"] = self.os_version
        if self.os_features:
            out["os.features"] = list(self.os_features)
        return out

    @classmethod
    def from_json(cls, value: object, what: str) -> "Platform":
        """A `platform` object from a manifest; InvalidManifestError naming `what`."""
        if not isinstance(value, dict):
            raise InvalidManifestError(f"{what}: platform is not an object")
        fields = {}
        for key in ("os", "architecture", "variant", "os.version"):
            v = value.get(key, "")
            if not isinstance(v, str) or (key in ("os", "architecture") and not v):
                raise InvalidManifestError(f"{what}: platform {key!r} missing or not a string")
            fields[key] = v
        features = value.get("os.features") or []
        if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
            raise InvalidManifestError(f"{what}: platform 'os.features' is not a list of strings")
        return cls(fields["os"], fields["architecture"], fields["variant"],
                   fields["os.version"], tuple(features))


def host_platform() -> Platform:
    """The platform of this machine (linux/amd64 on x86-64 Linux)."""
    machine = _stdlib_platform.machine().lower()
    variant = ""
    if machine.startswith("armv") and machine[4:5].isdigit():
        machine, variant = "arm", "v" + machine[4]
    return Platform(_stdlib_platform.system().lower() or "linux", machine, variant).normalized()


def _variant_rank(want: Platform, have: Platform) -> int | None:
    """How well `have` fits a host of platform `want`: 0 exact, higher worse, None never."""
    if want.os != have.os or want.architecture != have.architecture:
        return None
    if want.variant == have.variant:
        return 0
    if want.architecture in ("arm", "amd64", "arm64"):
        base = {"arm": 5, "amd64": 1, "arm64": 8}[want.architecture]
        w, h = _variant_number(want.variant, base), _variant_number(have.variant, base)
        if w is not None and h is not None and h <= w:
            return 1 + (w - h)
    return None


def _variant_number(variant: str, default: int) -> int | None:
    if not variant:
        return default
    if variant[0] == "v" and variant[1:].isdigit():
        return int(variant[1:])
    return None


def matches(want: Platform, have: Platform) -> bool:
    """True if an image built for `have` runs on a host of platform `want`."""
    return _variant_rank(want.normalized(), have.normalized()) is not None


def best_match(want: Platform, candidates: Sequence[tuple[Platform | None, T]]) -> T | None:
    """The item whose platform fits `want` best (exact variant first, then the nearest
    older one; the first in order among equals), or None."""
    want = want.normalized()
    best: tuple[int, int] | None = None
    found: T | None = None
    for i, (plat, item) in enumerate(candidates):
        if plat is None:
            continue
        rank = _variant_rank(want, plat.normalized())
        if rank is not None and (best is None or (rank, i) < best):
            best, found = (rank, i), item
    return found


def describe(platforms: Iterable[Platform | None]) -> str:
    """`linux/amd64, linux/arm64` for an error message listing what an index offers."""
    names = sorted({str(p.normalized()) for p in platforms if p is not None})
    return ", ".join(names) if names else "none"
