"""Mount specifications for `State.run`: bind mounts of states, cache mounts, tmpfs."""

from __future__ import annotations


from llb import ops as _ops
from llb.errors import DefinitionError
from llb.node import Output
from llb.values import Value, value_class



@value_class(frozen=True, eq=False, repr=False)  # eq, hash, repr: Value's
class MountSpec(Value):
    """What `mount`, `cache_mount` and `tmpfs` return; `State.run(mounts=[...])` takes them."""

    dest: str
    type: str = _ops.MOUNT_BIND
    state: Output | None = None
    selector: str = ""
    readonly: bool = False
    cache_id: str = ""
    sharing: str = _ops.SHARING_SHARED
    size: int = 0


def mount(dest: str, state: Output, *, selector: str = "", readonly: bool = False) -> MountSpec:
    """Mount `state` (or its sub-path `selector`) at `dest`; writable unless readonly, and a
    writable mount's result is `ExecState.get_mount(dest)`."""
    if not isinstance(state, Output):
        raise DefinitionError(f"mount {dest}: expected an llb.State, got {type(state).__name__}")
    return MountSpec(dest=dest, state=state, selector=selector, readonly=bool(readonly))


def cache_mount(dest: str, id: str, *, sharing: str = _ops.SHARING_SHARED) -> MountSpec:  # noqa: A002
    """A persistent cache directory shared between runs by `id` (sharing: shared, private or
    locked, as BuildKit's cache mounts); it is never part of a result."""
    if not isinstance(id, str) or not id:
        raise DefinitionError(f"cache mount {dest}: id must be a non-empty string")
    return MountSpec(dest=dest, type=_ops.MOUNT_CACHE, cache_id=id, sharing=sharing)


def tmpfs(dest: str, *, size: int = 0) -> MountSpec:
    """A fresh tmpfs at `dest` (size in bytes, 0 = the kernel default); never part of a result."""
    return MountSpec(dest=dest, type=_ops.MOUNT_TMPFS, size=size)
