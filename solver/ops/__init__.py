"""Op handlers, one module per op kind, and the dispatch from an op's kind to its module.

Each module exposes `run(ctx, op, inputs) -> list[Ref | None]` and `name(op) -> str`.
Modules are imported on first use so a fully cached solve never imports them."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from llb.solver.errors import UnsupportedError
from llb.solver.names import vertex_name
from llb.solver.ops.context import OpContext

_MODULES = {
    "source": "llb.solver.ops.source",
    "exec": "llb.solver.ops.exec",
    "file": "llb.solver.ops.file",
    "merge": "llb.solver.ops.merge",
    "diff": "llb.solver.ops.diff",
}
_loaded: dict[str, ModuleType] = {}

__all__ = ["OpContext", "handler", "run", "name"]


def handler(kind: str) -> ModuleType:
    """The module running ops of `kind`; UnsupportedError when this build of llb has none."""
    mod = _loaded.get(kind)
    if mod is not None:
        return mod
    modname = _MODULES.get(kind)
    if modname is None:
        raise UnsupportedError(f"unknown op kind {kind!r}")
    try:
        mod = importlib.import_module(modname)
    except ModuleNotFoundError as e:
        if e.name != modname:
            raise
        raise UnsupportedError(f"{kind} ops are not supported yet") from None
    _loaded[kind] = mod
    return mod


def run(ctx: OpContext, op: Any, inputs: list) -> list:
    """Run `op` on its input refs; results are indexed by output index."""
    return handler(op.kind).run(ctx, op, inputs)


def name(op: Any) -> str:
    """The vertex's progress name: what the op does with its main arguments (from
    `llb.solver.names`, so naming imports no handler)."""
    return vertex_name(op)
