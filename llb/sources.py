"""Source states: scratch, registry images, OCI layouts and local directories."""

from __future__ import annotations

import os
import re

from llb import ops as _ops
from llb.actions import patterns
from llb.errors import DefinitionError
from llb.paths import clean
from llb.refs import normalize_image_ref
from llb.node import Node, new_node
from llb.state import State
from llb.validate import LOCAL_NAME_PATTERN, check_digest

_SCRATCH: Node | None = None


def scratch() -> State:
    """The empty state."""
    global _SCRATCH
    if _SCRATCH is None:
        _SCRATCH = Node(_ops.SourceOp(_ops.SCRATCH), (), typed=True)
    return State(_SCRATCH)


def image(ref: str, *, name: str = "", description: str = "") -> State:
    """An image from a registry; `ref` is normalised like Docker (busybox ->
    docker.io/library/busybox:latest)."""
    op = _ops.SourceOp(_ops.source_identifier(_ops.SCHEME_IMAGE, normalize_image_ref(ref)))
    return State(new_node(op, (), name=name, description=description))


def oci_layout(path: str | os.PathLike[str], *, tag: str | None = None,
               digest: str | None = None, name: str = "", description: str = "") -> State:
    """An image from a local OCI image layout directory, by tag (default "latest") or by
    manifest digest."""
    if tag is not None and digest is not None:
        raise DefinitionError("oci_layout: give tag= or digest=, not both")
    path = os.fspath(path)
    if not isinstance(path, str) or not path:
        raise DefinitionError(f"oci_layout: path must be a non-empty path, not {path!r}")
    abspath = clean(os.path.abspath(path))
    if digest is not None:
        check_digest(digest, "oci_layout digest")
        locator = f"{abspath}@{digest}"
    else:
        locator = f"{abspath}:{'latest' if tag is None else tag}"
    ident = _ops.source_identifier(_ops.SCHEME_OCI_LAYOUT, locator)
    return State(new_node(_ops.SourceOp(ident), (), name=name, description=description))


def local(name: str, *, include: list[str] | tuple[str, ...] = (),
          exclude: list[str] | tuple[str, ...] = (), description: str = "") -> State:
    """A directory of the user's machine, given to the solver as `--local NAME=PATH`;
    include/exclude are gitignore-style patterns (a progress name: `.with_name(...)`)."""
    if not isinstance(name, str) or not re.match(LOCAL_NAME_PATTERN, name):
        raise DefinitionError(f"local name {name!r} must match {LOCAL_NAME_PATTERN}")
    op = _ops.SourceOp(_ops.source_identifier(_ops.SCHEME_LOCAL, name), include=patterns(include, "include"),
                       exclude=patterns(exclude, "exclude"))
    return State(new_node(op, (), description=description))
