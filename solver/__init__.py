"""solver: runs a Definition — vertices, cache keys, the cache DB, the scheduler, op handlers,
progress events and exporters. Public names are imported on first use (PEP 562), so
`import llb.solver.errors` stays cheap."""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from typing import Any

_EXPORTS = {
    "Solver": "llb.solver.solve",
    "SolveResult": "llb.solver.solve",
    "SolveError": "llb.solver.errors",
    "UnsupportedError": "llb.solver.errors",
    "InputError": "llb.solver.errors",
    "SolveCancelledError": "llb.solver.errors",
    "Progress": "llb.solver.progress",
    "Recorder": "llb.solver.progress",
    "CacheDB": "llb.solver.cachedb",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'solver' has no attribute {name!r}")
    return getattr(importlib.import_module(mod), name)
