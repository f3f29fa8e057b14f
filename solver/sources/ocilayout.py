"""oci-layout://PATH:TAG and oci-layout://PATH@DIGEST: an image from an OCI image layout (a
directory, or a tar of one). PATH is absolute, or a name given as `--oci-layout NAME=PATH`.
Its key is the manifest digest the tag names in the layout's index.json (read locally);
its snapshot is the image's layers as lazy snapshots, read from the layout when needed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

from llb.ops import SCHEME_OCI_LAYOUT, Copy, SourceOp
from llb.snapshot import Ref
from llb.solver.errors import InputError
from llb.solver.ops.context import OpContext
from llb.solver.puller import Origin
from llb.solver.sources import SourceEnv
from llb.solver.sources.image import platform_of, puller_of


def where(op: SourceOp, layouts: Mapping[str, Path], vertex: str | None
          ) -> tuple[str, str | None, str | None]:
    """(layout path, tag, digest) the op names; a name is looked up in `--oci-layout`."""
    rest = op.locator
    if "@" in rest:
        path, _, digest = rest.rpartition("@")
        tag = None
    else:
        path, _, tag = rest.rpartition(":")
        digest = None
    if not path.startswith("/"):
        mapped = layouts.get(path)
        if mapped is None:
            raise InputError(f"no --oci-layout mapping for layout {path!r} (pass "
                             f"--oci-layout {path}=PATH)", vertex=vertex)
        path = os.path.abspath(mapped)
    return path, tag, digest


def check(op: SourceOp, env: SourceEnv, vertex: str) -> None:
    """The layout must exist (a directory or a file) and the platform attr parse."""
    path, _, _ = where(op, env.oci_layouts, vertex)
    if not os.path.exists(path):
        raise InputError(f"{op.identifier}: no OCI layout at {path}", vertex=vertex, path=path)
    platform_of(op, vertex)


def check_copies(op: SourceOp, env: SourceEnv, vertex: str, copies: list[Copy]) -> None:
    """An image's paths are known once it is read: nothing to check before."""


def content_key(op: SourceOp, env: SourceEnv, vertex: str) -> str | None:
    """The manifest (or index) digest the tag names, or the pinned one."""
    path, tag, digest = where(op, env.oci_layouts, vertex)
    if digest is not None:
        return digest
    return puller_of(env.puller, vertex).layout(path).find(tag=tag).digest


def snapshot(ctx: OpContext, op: SourceOp) -> Ref | None:
    """The image's layers, lazy: read from the layout when something needs them."""
    puller = puller_of(ctx.puller, ctx.vertex)
    path, tag, digest = where(op, ctx.oci_layouts, ctx.vertex)
    resolved = puller.resolve_layout(path, tag, digest, platform_of(op, ctx.vertex))
    origin = Origin(SCHEME_OCI_LAYOUT, path, resolved.root.digest, ctx.vertex)
    return puller.add_layers(ctx.store, resolved, origin)
