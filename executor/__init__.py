"""executor: runs one process in a container (runc) on prepared mounts, as BuildKit's
executor/ does. It knows nothing of ops, vertices or the cache: the solver's exec op hands it
a rootfs path, mounts and a process spec, and commits what the run changed."""

from llb.executor.runc import (
    BindMount, Executor, ExecutorError, ProcessSpec, RuncNotFoundError, RunResult, TmpfsMount,
)

__all__ = [
    "BindMount", "Executor", "ExecutorError", "ProcessSpec", "RunResult", "RuncNotFoundError",
    "TmpfsMount",
]
