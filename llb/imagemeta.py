"""The image config a definition's output carries: Env, WorkingDir and User from the output
state's settings, plus Entrypoint, Cmd, Labels and ExposedPorts set with `state.entrypoint()`,
`.cmd()`, `.label()` and `.expose()`.

It is metadata, not an op: no op digest and no cache key depends on it (BuildKit carries the
same as exporter metadata, `containerimage.config`, beside the definition). A Definition
keeps it under an optional "image" key that is written only when something is set, so the
bytes of definitions without it, and every definition written before it existed, are
unchanged. Its wire form is a map of the fields that are set, keys sorted:

    {"cmd": [...], "entrypoint": [...], "env": ["K=V", ...], "expose": ["80/tcp", ...],
     "labels": [["key", "value"], ...], "user": "...", "working_dir": "/..."}
"""

from __future__ import annotations

from llb.errors import DefinitionError
from llb.values import Value, value_class

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from typing import Any

_PORT = r"^([0-9]{1,5})(?:/(tcp|udp|sctp))?$"  # compiled on first use (re's cache)
_MAX_ITEMS = 1 << 16
_MAX_TEXT = 1 << 20
KEYS = ("cmd", "entrypoint", "env", "expose", "labels", "user", "working_dir")


@value_class(frozen=True, eq=False, repr=False)  # eq, hash, repr: Value's
class ImageMeta(Value):
    """What an exported image's config says about running it. `entrypoint`/`cmd` None means
    unset (an empty tuple is set and empty, as Docker tells `null` from `[]`); `labels` are
    sorted (key, value) pairs; `expose` sorted "PORT/PROTO" strings."""

    env: tuple[str, ...] = ()
    working_dir: str = ""
    user: str = ""
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    labels: tuple[tuple[str, str], ...] = ()
    expose: tuple[str, ...] = ()

    def is_empty(self) -> bool:
        """True when nothing is set (the definition then carries no "image" key)."""
        return self == EMPTY

    def to_wire(self) -> dict[str, Any]:
        """The msgpack-ready map of the fields that are set, keys sorted."""
        out: dict[str, Any] = {}
        if self.cmd is not None:
            out["cmd"] = list(self.cmd)
        if self.entrypoint is not None:
            out["entrypoint"] = list(self.entrypoint)
        if self.env:
            out["env"] = list(self.env)
        if self.expose:
            out["expose"] = list(self.expose)
        if self.labels:
            out["labels"] = [[k, v] for k, v in self.labels]
        if self.user:
            out["user"] = self.user
        if self.working_dir:
            out["working_dir"] = self.working_dir
        return out

    @classmethod
    def from_wire(cls, value: Any) -> ImageMeta:
        """Parse the wire map (hostile input); DefinitionError says what is wrong."""
        if type(value) is not dict:
            raise DefinitionError("definition image config must be a map")
        keys = list(value)
        unknown = [k for k in keys if k not in KEYS]
        if unknown:
            raise DefinitionError(f"definition image config: unknown field {str(unknown[0])[:40]!r}")
        if keys != sorted(keys):
            raise DefinitionError("definition image config: fields not in sorted order")
        if not keys:
            raise DefinitionError("definition image config is empty (omit it)")
        fields: dict[str, Any] = {}
        for key in ("cmd", "entrypoint", "env", "expose"):
            if key in value:
                fields[key] = _strings(value[key], key)
        if "labels" in value:
            fields["labels"] = _pairs(value["labels"])
        for key in ("user", "working_dir"):
            if key in value:
                fields[key] = _text(value[key], key)
        meta = cls(**fields)
        meta.check()
        if meta.to_wire() != value:
            raise DefinitionError("definition image config is not canonically encoded")
        return meta

    def check(self) -> None:
        """DefinitionError unless every field has a value an image config can hold."""
        for item in self.env:
            key, eq, _ = item.partition("=")
            if not eq or not key:
                raise DefinitionError(f"image config env entry {item[:80]!r} is not KEY=value")
        if self.working_dir and not self.working_dir.startswith("/"):
            raise DefinitionError(f"image config working_dir {self.working_dir[:80]!r} is not "
                                  "absolute")
        keys = [k for k, _ in self.labels]
        if keys != sorted(set(keys)):
            raise DefinitionError("image config labels must be sorted with unique keys")
        if any(not k for k in keys):
            raise DefinitionError("image config label keys must not be empty")
        if list(self.expose) != sorted(set(self.expose)):
            raise DefinitionError("image config exposed ports must be sorted and unique")
        for port in self.expose:
            if normalize_port(port) != port:
                raise DefinitionError(f"image config exposed port {port[:40]!r} is not "
                                      "canonically written (PORT/PROTO)")


EMPTY = ImageMeta()


def normalize_port(port: str | int) -> str:
    """ "PORT/PROTO" for 80, "80", "80/tcp", "53/udp" (tcp when no protocol is given), as
    Docker writes ExposedPorts keys; DefinitionError otherwise."""
    text = str(port) if isinstance(port, int) and not isinstance(port, bool) else port
    if not isinstance(text, str):
        raise DefinitionError(f"expose: a port is a number or 'PORT/PROTO', not {port!r}")
    import re  # a port's (re loads enum): not for a cached solve

    m = re.match(_PORT, text.lower())
    if not m or not 0 < int(m.group(1)) < 65536:
        raise DefinitionError(f"expose: bad port {text[:40]!r} (1-65535, optionally /tcp, "
                              "/udp or /sctp)")
    return f"{int(m.group(1))}/{m.group(2) or 'tcp'}"


def _text(v: Any, what: str) -> str:
    if type(v) is not str:
        raise DefinitionError(f"definition image config {what}: expected a string")
    if len(v) > _MAX_TEXT:
        raise DefinitionError(f"definition image config {what}: too long")
    return v


def _strings(v: Any, what: str) -> tuple[str, ...]:
    if type(v) is not list or len(v) > _MAX_ITEMS:
        raise DefinitionError(f"definition image config {what}: expected an array of strings")
    return tuple(_text(x, what) for x in v)


def _pairs(v: Any) -> tuple[tuple[str, str], ...]:
    if type(v) is not list or len(v) > _MAX_ITEMS:
        raise DefinitionError("definition image config labels: expected an array of pairs")
    out = []
    for item in v:
        if type(item) is not list or len(item) != 2:
            raise DefinitionError("definition image config labels: expected [key, value] pairs")
        out.append((_text(item[0], "labels"), _text(item[1], "labels")))
    return tuple(out)


__all__ = ["EMPTY", "ImageMeta", "KEYS", "normalize_port"]
