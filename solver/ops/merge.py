"""MergeOp: every input's layer chain applied in order onto an empty tree (snapshot.merge)."""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~13M instructions)
if TYPE_CHECKING:
    from typing import Any

from llb.solver.names import merge_name as name
from llb.solver.ops.context import OpContext

__all__ = ["name", "run"]


def run(ctx: OpContext, op: Any, inputs: list) -> list:
    """The merged ref; scratch inputs are dropped by the store, an all-empty merge is empty."""
    return [ctx.store.merge(list(inputs))]
