"""Source ops: the snapshot of a source comes from the module registered for its scheme
(llb.solver.sources)."""

from __future__ import annotations

from llb.ops import SourceOp
from llb.snapshot import Ref
from llb.solver.names import source_name as name
from llb.solver.ops.context import OpContext
from llb.solver.sources import source_for

__all__ = ["name", "run"]


def run(ctx: OpContext, op: SourceOp, inputs: list[Ref | None]) -> list[Ref | None]:
    """The source's content as a snapshot (None: the empty tree)."""
    return [source_for(op, ctx.vertex).snapshot(ctx, op)]
