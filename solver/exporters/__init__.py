"""Exporters by output type (BuildKit's exporter map): `--output type=T,k=v,...` picks the
module registered for T, which checks the spec before anything is solved and writes the
solved result out of the store. Adding an output type is one entry in `EXPORTERS` and one
module; the modules are imported on first use (exporting a directory loads no tarfile, a
local export no image code)."""

from __future__ import annotations

from collections.abc import Mapping

from llb.records import Record
from llb.snapshot import Ref, Store
from llb.solver.errors import OutputSpecError
from llb.solver.registry import Registry

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Protocol
    from llb.imagemeta import ImageMeta
    from llb.solver.progress import Progress
else:  # a protocol is a plain base class at run time (nothing checks one then)
    Protocol = object

# output type -> the module implementing it
EXPORTERS: Registry[Exporter] = Registry({
    "local": "llb.solver.exporters.local",
    "tar": "llb.solver.exporters.tar",
    "oci": "llb.solver.exporters.oci",
    "docker": "llb.solver.exporters.docker",
    "image": "llb.solver.exporters.image",
    "registry": "llb.solver.exporters.image",  # BuildKit's alias: type=image,push=true
})


class OutputSpec(Record):
    """A parsed `--output`: its type, its key=value options (dest, ...), and the text as given
    (for messages)."""

    type: str
    attrs: dict[str, str]
    text: str

    @property
    def dest(self) -> str:
        """The dest= option ("" when not given)."""
        return self.attrs.get("dest", "")


class ExportContext(Record):
    """What a solve tells an exporter besides the result: the llb root (its content store
    holds image blobs), the definition's image config, the name of the vertex that made
    each snapshot (for image history), and where progress goes."""

    root: str | None = None
    image: ImageMeta | None = None
    names: Mapping[str, str] = {}  # snapshot id -> name of the vertex that produced it
    progress: Progress | None = None


class Exporter(Protocol):
    """What an exporter module offers."""

    def check(self, spec: OutputSpec) -> None:
        """Raise OutputSpecError for an option it does not know or a destination it cannot
        write, before anything is solved (and leave nothing behind)."""

    def export(self, spec: OutputSpec, store: Store, ref: Ref | None,
               ctx: ExportContext | None = None) -> None:
        """Write the tree of ref (None: empty) as the spec says."""


def output_types() -> list[str]:
    """Every known output type."""
    return EXPORTERS.names()


def parse_output(text: str) -> OutputSpec:
    """Parse `type=T,k=v,...` and have T's exporter check it (OutputSpecError: exit 2)."""
    attrs: dict[str, str] = {}
    for part in text.split(","):
        if not part:
            continue
        key, eq, value = part.partition("=")
        if not eq:
            raise OutputSpecError(f"--output {text}: expected key=value, got {part!r}")
        attrs[key.strip()] = value
    typ = attrs.pop("type", None)
    known = " or ".join(output_types())
    if typ is None:
        raise OutputSpecError(f"--output {text}: missing type= ({known})")
    if typ not in EXPORTERS:
        raise OutputSpecError(f"--output {text}: unknown output type {typ!r} (expected {known})")
    spec = OutputSpec(typ, attrs, text)
    exporter_for(typ).check(spec)
    return spec


def exporter_for(output_type: str) -> Exporter:
    """The module exporting `output_type` (one of output_types())."""
    exporter = EXPORTERS.get(output_type)
    if exporter is None:
        raise OutputSpecError(f"unknown output type {output_type!r} (expected "
                              f"{' or '.join(output_types())})")
    return exporter


def export(spec: OutputSpec, store: Store, ref: Ref | None,
           ctx: ExportContext | None = None) -> None:
    """Write the result as the (parsed) output spec says."""
    exporter_for(spec.type).export(spec, store, ref, ctx)


def check_options(spec: OutputSpec, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> None:
    """OutputSpecError for an option not in `allowed` or a missing required one."""
    for key in required:
        if not spec.attrs.get(key):
            raise OutputSpecError(f"--output {spec.text}: type={spec.type} needs {key}=")
    unknown = sorted(set(spec.attrs) - set(allowed))
    if unknown:
        raise OutputSpecError(f"--output {spec.text}: unknown option {unknown[0]!r} for "
                              f"type={spec.type}")


__all__ = ["ExportContext", "Exporter", "OutputSpec", "check_options", "export", "exporter_for",
           "output_types", "parse_output"]
