"""Building an ExecOp from a state, a command and mount specs (BuildKit's ExecState)."""

from __future__ import annotations


from llb import ops as _ops
from llb.errors import DefinitionError
from llb.mounts import MountSpec
from llb.node import Node, Output, new_node
from llb.paths import resolve
from llb.records import Record


class BuiltExec(Record):
    """An ExecOp's node, its root output index (None: read-only rootfs) and the output index
    of every mount by destination (None: a mount without output)."""

    node: Node
    root_output: int | None
    mount_outputs: dict[str, int | None]


def build_exec(state: Output, argv: list[str], mounts: list[MountSpec], readonly_rootfs: bool,
               *, name: str = "", description: str = "", ignore_cache: bool = False) -> BuiltExec:
    """The ExecOp of running `argv` on `state` with `mounts` (sorted by destination so a
    parent directory is mounted before what is mounted inside it)."""
    settings = state.settings
    cwd = settings.cwd
    inputs: list[_ops.Input] = []
    nodes: list[Node] = []

    def input_index(s: Output) -> int:
        inp = s.output
        if inp in inputs:  # the same output mounted twice is one input, as in BuildKit
            return inputs.index(inp)
        inputs.append(inp)
        nodes.append(s.node)
        return len(inputs) - 1

    resolved: list[tuple[str, MountSpec]] = []
    for spec in mounts:
        if not isinstance(spec, MountSpec):
            raise DefinitionError(f"run: mounts take llb.mount/cache_mount/tmpfs, not "
                                  f"{type(spec).__name__}")
        if not isinstance(spec.dest, str) or not spec.dest:
            raise DefinitionError(f"run: mount destination must be a non-empty path, not "
                                  f"{spec.dest!r}")
        try:
            dest = resolve(cwd, spec.dest)
        except ValueError as e:
            raise DefinitionError(f"run: mount {spec.dest!r}: {e}") from None
        if dest == "/":
            raise DefinitionError("run: cannot mount over / (the rootfs is the state itself)")
        resolved.append((dest, spec))
    resolved.sort(key=lambda item: item[0])
    for (a, _), (b, _) in zip(resolved, resolved[1:]):
        if a == b:
            raise DefinitionError(f"run: two mounts at {a}")

    next_output = 0
    root_output: int | None = None
    if not readonly_rootfs:
        root_output, next_output = 0, 1
    op_mounts = [_ops.Mount(dest="/", input=input_index(state),
                            output=-1 if root_output is None else root_output,
                            readonly=readonly_rootfs)]
    outputs: dict[str, int | None] = {}
    for dest, spec in resolved:
        if spec.type == _ops.MOUNT_BIND:
            assert spec.state is not None
            selector = resolve("/", spec.selector) if spec.selector else ""
            if selector == "/":
                selector = ""
            output = -1 if spec.readonly else next_output
            if not spec.readonly:
                next_output += 1
            op_mounts.append(_ops.Mount(dest=dest, input=input_index(spec.state), output=output,
                                        selector=selector, readonly=spec.readonly))
            outputs[dest] = None if output < 0 else output
        elif spec.type == _ops.MOUNT_CACHE:
            op_mounts.append(_ops.Mount(dest=dest, type=_ops.MOUNT_CACHE, cache_id=spec.cache_id,
                                        sharing=spec.sharing))
            outputs[dest] = None
        else:
            op_mounts.append(_ops.Mount(dest=dest, type=_ops.MOUNT_TMPFS, tmpfs_size=spec.size))
            outputs[dest] = None

    env = [f"{k}={v}" for k, v in settings.env]
    if not any(k == "PATH" for k, _ in settings.env):
        env.append("PATH=" + _ops.DEFAULT_PATH)  # BuildKit adds the default PATH the same way
    op = _ops.ExecOp(inputs=tuple(inputs), args=tuple(argv), env=tuple(env), cwd=cwd,
                     user=settings.user, network=settings.network, hostname=settings.hostname,
                     mounts=tuple(op_mounts))
    node = new_node(op, tuple(nodes), name=name, description=description,
                    ignore_cache=ignore_cache)
    return BuiltExec(node, root_output, outputs)
