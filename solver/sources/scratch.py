"""scratch: the empty tree. Its key is nothing and its snapshot is None; a copy from it
finds nothing (which is bad input unless an empty wildcard match is allowed)."""

from __future__ import annotations

from llb.fsutil import contains_wildcards
from llb.ops import Copy, SourceOp
from llb.snapshot import Ref
from llb.solver.errors import InputError
from llb.solver.ops.context import OpContext
from llb.solver.sources import SourceEnv


def check(op: SourceOp, env: SourceEnv, vertex: str) -> None:
    """Nothing to check."""


def check_copies(op: SourceOp, env: SourceEnv, vertex: str, copies: list[Copy]) -> None:
    """A copy from scratch is bad input unless it may match nothing."""
    for c in copies:
        if not (c.allow_wildcard and c.allow_empty_wildcard and contains_wildcards(c.src)):
            raise InputError(f"copy source {c.src} not found", vertex=vertex, path=c.src)


def content_key(op: SourceOp, env: SourceEnv, vertex: str) -> str | None:
    """The empty tree has no content."""
    return None


def snapshot(ctx: OpContext, op: SourceOp) -> Ref | None:
    """The empty tree."""
    return None
