"""Op handlers, one module per op kind, and the dispatch from an op's kind to its module.

Each module exposes `run(ctx, op, inputs) -> list[Ref | None]` and `name(op) -> str`.
Modules are imported on first use so a fully cached solve never imports them."""

from __future__ import annotations

from llb.snapshot import Ref
from llb.solver.errors import UnsupportedError
from llb.solver.names import vertex_name
from llb.solver.ops.context import OpContext
from llb.solver.registry import Registry

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from threading import Lock
    from typing import Any, Protocol
else:  # a protocol is a plain base class at run time (nothing checks one then)
    Protocol = object

# op kind -> the module running it (imported on first use: a named start-up boundary)
HANDLERS: Registry[Handler] = Registry({
    "source": "llb.solver.ops.source",
    "exec": "llb.solver.ops.exec",
    "file": "llb.solver.ops.file",
    "merge": "llb.solver.ops.merge",
    "diff": "llb.solver.ops.diff",
})


class Handler(Protocol):
    """What an op handler module offers."""

    def run(self, ctx: OpContext, op: Any, inputs: list[Ref | None]) -> list[Ref | None]:
        """Run `op` on its input refs; results are indexed by output index."""


__all__ = ["HANDLERS", "Handler", "OpContext", "handler", "run", "name", "turn"]


def handler(kind: str) -> Handler:
    """The module running ops of `kind`; UnsupportedError for a kind llb does not know."""
    mod = HANDLERS.get(kind)
    if mod is None:
        raise UnsupportedError(f"unknown op kind {kind!r}")
    return mod


def run(ctx: OpContext, op: Any, inputs: list[Ref | None]) -> list[Ref | None]:
    """Run `op` on its input refs; results are indexed by output index."""
    return handler(op.kind).run(ctx, op, inputs)


def turn(op: Any) -> Lock | None:
    """The lock ops of `op`'s kind run under, one at a time in this process (its handler's
    TURN: FileOp's), which the scheduler takes before the op starts; None for other kinds
    (and for a kind llb does not know: run() says so)."""
    mod = HANDLERS.get(op.kind)
    return getattr(mod, "TURN", None) if mod is not None else None


def name(op: Any) -> str:
    """The vertex's progress name: what the op does with its main arguments (from
    `llb.solver.names`, so naming imports no handler)."""
    return vertex_name(op)
