"""Resolving images while a build file is evaluated (BuildKit's WithMetaResolver): with a
resolver in effect, `llb.image(ref)` is pinned to the digest the reference names now, and
its state takes the image config's Env, WorkingDir and User (and Entrypoint, Cmd, Labels
and ExposedPorts, for an image exported from it). The DSL stays free of disks and networks:
the resolver is injected by whoever evaluates the build file (the CLI's `llb solve` sets one
backed by the root's content store), and without one images stay as written and are
resolved when solved."""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar

from llb.imagemeta import EMPTY, ImageMeta
from llb.records import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from typing import Iterator, Protocol
else:  # a protocol is a plain base class at run time (nothing checks one then)
    Protocol = object


class ResolvedImage(Record):
    """What a resolver found: the digest the image is pinned to (the index or manifest the
    reference names), and what its config says about running it."""

    digest: str
    config: ImageMeta = EMPTY


class Resolver(Protocol):
    """Resolves image references and OCI layout entries to a pinned digest and config."""

    def resolve_image(self, ref: str, platform: str | None) -> ResolvedImage:
        """`ref` is normalised (docker.io/library/busybox:latest, or pinned already)."""

    def resolve_layout(self, path: str, tag: str | None, digest: str | None,
                       platform: str | None) -> ResolvedImage:
        """`path` is an absolute layout path or a name mapped with --oci-layout."""


_CURRENT: ContextVar[Resolver | None] = ContextVar("llb_image_resolver", default=None)


def current() -> Resolver | None:
    """The resolver in effect, if any."""
    return _CURRENT.get()


@contextmanager
def using(resolver: Resolver | None) -> Iterator[None]:
    """Evaluate DSL code with `resolver` in effect (None: none)."""
    token = _CURRENT.set(resolver)
    try:
        yield
    finally:
        _CURRENT.reset(token)


__all__ = ["ResolvedImage", "Resolver", "current", "using"]
