"""executor: runs one process in a container (runc) on prepared mounts, as BuildKit's
executor/ does. It knows nothing of ops, vertices or the cache: the solver's exec op hands it
a rootfs path, mounts and a process spec, and commits what the run changed.

The names below come from llb.executor.runc, imported on first use: every command imports
llb.executor.orphans at start-up (to reap dead processes' containers), and that must not
cost runc.py's imports."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llb.executor.runc import (
        BindMount, Executor, ExecutorError, ProcessSpec, RuncNotFoundError, RunResult,
        TmpfsMount,
    )

__all__ = [
    "BindMount", "Executor", "ExecutorError", "ProcessSpec", "RunResult", "RuncNotFoundError",
    "TmpfsMount",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("llb.executor.runc"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
