"""Sources by scheme, as BuildKit's source manager: every scheme a SourceOp identifier can
carry ("local", later "docker-image" and "oci-layout"; scratch has none) has one module that
checks the source's input before anything runs, computes its content key, and makes its
snapshot. Adding a source is one entry in `SOURCES` and one module.

The modules are imported on first use (a named start-up boundary: a cached solve of a graph
with no local source imports none of them)."""

from __future__ import annotations

from llb.ops import SCHEME_IMAGE, SCHEME_LOCAL, SCHEME_OCI_LAYOUT, SCRATCH, Copy, SourceOp
from llb.records import Record
from llb.solver.errors import UnsupportedError
from llb.solver.registry import Registry

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any, Mapping, Protocol
    from llb.snapshot import Ref
    from llb.solver.cachedb import CacheDB
    from llb.solver.ops.context import OpContext
    from llb.solver.puller import Puller
else:  # a protocol is a plain base class at run time (nothing checks one then)
    Protocol = object

# scheme -> the module implementing it
SOURCES: Registry[Source] = Registry({
    SCRATCH: "llb.solver.sources.scratch",
    SCHEME_LOCAL: "llb.solver.sources.local",
    SCHEME_IMAGE: "llb.solver.sources.image",
    SCHEME_OCI_LAYOUT: "llb.solver.sources.ocilayout",
})


class SourceEnv(Record):
    """What a solve gives its sources besides the op: the `--local` directories, the cache
    DB (memoised checksums), the llb root, the `--oci-layout` names, and the solver's
    image puller (registries and layouts, opened on first use)."""

    local_dirs: Mapping[str, Path]
    db: CacheDB | None
    root: str
    oci_layouts: Mapping[str, Path] = {}
    puller: Puller | None = None


class Source(Protocol):
    """What a source module offers the solver."""

    def check(self, op: SourceOp, env: SourceEnv, vertex: str) -> None:
        """Raise InputError (exit 2) for bad input found before anything runs."""

    def check_copies(self, op: SourceOp, env: SourceEnv, vertex: str,
                     copies: list[Copy]) -> None:
        """Raise InputError when a copy reads a path this source does not have (where that
        can be told before anything runs)."""

    def content_key(self, op: SourceOp, env: SourceEnv, vertex: str) -> str | None:
        """What the source's cache key is made of (None: the empty tree)."""

    def snapshot(self, ctx: OpContext, op: SourceOp) -> Ref | None:
        """The source's content as a committed snapshot (None: the empty tree). A source
        whose content can change while it is read sets `ctx.content_key` to the key of what
        the snapshot holds; the solver records the result under that key."""


def source_for(op: SourceOp, vertex: str | None = None) -> Source:
    """The module implementing `op`'s scheme; UnsupportedError for a scheme llb cannot solve."""
    src = SOURCES.get(op.scheme)
    if src is None:
        raise UnsupportedError(f"source {op.identifier}: not supported yet", vertex=vertex)
    return src


def is_local(op: Any) -> bool:
    """True for a `local://NAME` source op."""
    return op.kind == "source" and op.scheme == SCHEME_LOCAL


def keyed_after_run(op: Any) -> bool:
    """Whether a source's cache key is final only once its snapshot exists (its content can
    change between the key and the copy): on a miss, consumers are keyed after it ran."""
    return is_local(op)


__all__ = ["SOURCES", "Source", "SourceEnv", "is_local", "keyed_after_run", "source_for"]
