"""DiffOp: what the upper input changed relative to the lower one (snapshot.diff)."""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~13M instructions)
if TYPE_CHECKING:
    from typing import Any

from llb.solver.names import diff_name as name
from llb.solver.ops.context import OpContext

__all__ = ["name", "run"]


def run(ctx: OpContext, op: Any, inputs: list) -> list:
    """The diff ref: upper's layers above lower where they share a prefix, else one layer."""
    lower, upper = inputs
    return [ctx.store.diff(lower, upper)]
