"""docker-image://REF: an image from a registry (OCI distribution API). Its key is the digest
the reference is pinned to (resolved through the registry when the definition names a tag;
a pinned reference needs no network at all to be keyed), and its snapshot is the image's
layers as lazy snapshots: nothing is downloaded until a later vertex needs their content
(an exec, a copy, a local export), and an image export of them downloads nothing.

The source attr `platform` ("os/arch[/variant]") picks one image from an index (default:
the host's platform)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from llb.ops import SCHEME_IMAGE, Copy, SourceOp
from llb.snapshot import Ref
from llb.solver.errors import InputError
from llb.solver.ops.context import OpContext
from llb.solver.puller import Origin, Puller
from llb.solver.sources import SourceEnv

if TYPE_CHECKING:
    from llb.content.platforms import Platform

def platform_of(op: SourceOp, vertex: str | None) -> Platform | None:
    """The op's `platform` attr, parsed (None: the host's)."""
    spec = dict(op.attrs).get("platform")
    if spec is None:
        return None
    from llb.content.platforms import Platform

    try:
        return Platform.parse(spec)
    except ValueError as e:
        raise InputError(f"{op.identifier}: {e}", vertex=vertex) from None


def puller_of(puller: Puller | None, vertex: str | None) -> Puller:
    """The solver's puller (a SourceEnv or OpContext built without one cannot pull)."""
    if puller is None:
        raise InputError("image sources need a solver with an image puller", vertex=vertex)
    return puller


def check(op: SourceOp, env: SourceEnv, vertex: str) -> None:
    """The platform attr must parse (the reference was checked when the op was)."""
    platform_of(op, vertex)


def check_copies(op: SourceOp, env: SourceEnv, vertex: str, copies: list[Copy]) -> None:
    """An image's paths are known once it is pulled: nothing to check before."""


def content_key(op: SourceOp, env: SourceEnv, vertex: str) -> str | None:
    """The pinned digest: the reference's own, or what its tag names now."""
    from llb.content.reference import Reference

    ref = Reference.parse(op.locator)
    if ref.digest:
        return ref.digest
    platform = platform_of(op, vertex)
    puller = puller_of(env.puller, vertex)
    key = (op.identifier, str(platform))
    found = puller.pinned.get(key)
    if found is None:
        found = puller.pinned[key] = puller.resolve_registry(str(ref), platform).root.digest
    return found


def snapshot(ctx: OpContext, op: SourceOp) -> Ref | None:
    """The image's layers, lazy (see the module docstring)."""
    from llb.content.reference import Reference

    puller = puller_of(ctx.puller, ctx.vertex)
    ref = Reference.parse(op.locator)
    platform = platform_of(op, ctx.vertex)
    root = ref.digest or puller.pinned.get((op.identifier, str(platform)))
    pinned = ref.with_digest(root) if root else ref
    resolved = puller.resolve_registry(str(pinned), platform)
    origin = Origin(SCHEME_IMAGE, ref.name, resolved.root.digest, ctx.vertex)
    return puller.add_layers(ctx.store, resolved, origin)
