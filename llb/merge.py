"""merge() and diff(): combining independently built states (MergeOp, DiffOp)."""

from __future__ import annotations

from collections.abc import Iterable

from llb import ops as _ops
from llb.errors import DefinitionError
from llb.sources import scratch
from llb.node import new_node
from llb.state import State


def merge(states: Iterable[State], *, name: str = "", description: str = "") -> State:
    """Layer `states` in order (later inputs win; deletions replay). Scratch inputs are
    dropped; a merge of one state is that state and of none is scratch. The result keeps the
    first input's env/cwd/user for later runs."""
    states = list(states)
    for s in states:
        if not isinstance(s, State):
            raise DefinitionError(f"merge takes llb.State values, not {type(s).__name__}")
    kept = [s for s in states if not s.is_scratch]
    if not kept:
        return scratch()
    if len(kept) == 1:
        return kept[0]
    op = _ops.MergeOp(inputs=tuple(s.output for s in kept))
    node = new_node(op, tuple(s.node for s in kept), name=name, description=description,
                    typed=True)
    return State(node, 0, kept[0].settings)


def diff(lower: State, upper: State, *, name: str = "", description: str = "") -> State:
    """What `upper` changed relative to `lower`, deletions included; merge([lower, d]) is
    upper. The result keeps upper's env/cwd/user."""
    if not isinstance(lower, State) or not isinstance(upper, State):
        raise DefinitionError("diff takes two llb.State values (lower, upper)")
    op = _ops.DiffOp(inputs=(lower.output, upper.output))
    node = new_node(op, (lower.node, upper.node), name=name, description=description,
                    typed=True)
    return State(node, 0, upper.settings)
