"""MergeOp: every input's layer chain applied in order onto an empty tree (snapshot.merge)."""

from __future__ import annotations

from typing import Any

from solver.ops.context import OpContext


def name(op: Any) -> str:
    return f"merge ({len(op.inputs)} inputs)"


def run(ctx: OpContext, op: Any, inputs: list) -> list:
    """The merged ref; scratch inputs are dropped by the store, an all-empty merge is empty."""
    return [ctx.store.merge(list(inputs))]
