"""ExecOp: run a process under runc on snapshots of its inputs; commit what it wrote.

The rootfs (mounts[0]) is a prepared snapshot of its input (a real copy on the native
snapshotter, an overlay mount on overlayfs); a read-only rootfs is prepared too (runc needs
to create mount points before it remounts "/" read-only) and discarded afterwards. Other
mounts: read-only binds show a view of the committed input, writable binds get their own
prepared snapshot whose commit is that mount's output, cache mounts come from
`llb.solver.cachemounts`, tmpfs mounts are fresh. A non-zero exit commits nothing.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from llb.fsutil import remove_tree
from llb.validate import MAX_ID
from llb.errors import is_no_space
from llb.ops import (MOUNT_BIND, MOUNT_CACHE, MOUNT_TMPFS, NETWORK_HOST, NETWORK_NONE,
                     SHARING_LOCKED, SHARING_PRIVATE, ExecOp, Mount)
from llb.snapshot.paths import resolve_in_root
from llb.solver.cachemounts import CacheMounts
from llb.solver.errors import SolveCancelledError, InputError, SolveError, UnsupportedError
from llb.executor.runc import (
    LOG_TAIL_LINES, BindMount, ContainerMount, Executor, ProcessSpec, RunResult, TmpfsMount,
)
from llb.solver.names import exec_name as name
from llb.solver.orphans import EXECUTOR_DIR, reap
from llb.solver.ops.context import OpContext

__all__ = ["command", "executor_for", "name", "resolve_user", "run"]


_executors: dict[Path, Executor] = {}
_executors_lock = threading.Lock()


def command(op: ExecOp) -> str:
    """The command as BuildKit words it in errors: the argv joined by spaces."""
    return " ".join(op.args)


def executor_for(root: Path) -> Executor:
    """The (shared) executor of an llb root; RuncNotFoundError when runc is missing."""
    key = Path(root).resolve()
    with _executors_lock:
        ex = _executors.get(key)
        if ex is None:
            ex = Executor(key / EXECUTOR_DIR)
            _executors[key] = ex
        return ex


def run(ctx: OpContext, op: ExecOp, inputs: list[Any]) -> list[Any]:
    """Run `op` on `inputs` (refs indexed like op.inputs); outputs indexed by Mount.output."""
    _validate(ctx, op)
    if ctx.cancelled.is_set():
        raise SolveCancelledError("cancelled", vertex=ctx.vertex)
    executor = executor_for(Path(ctx.root))
    n_outputs = max([m.output for m in op.mounts] + [-1]) + 1
    prepared: list[tuple[int, Any]] = []  # (output index or -1, Mutable), not yet finished
    try:
        with ExitStack() as mounted:
            rootfs, spec = _setup(ctx, op, inputs, executor, mounted, prepared)
            result = executor.run(rootfs, spec, log=ctx.log, cancelled=ctx.cancelled)
        _check(ctx, op, result)
        outputs: list[Any] = [None] * n_outputs
        while prepared:
            out, mut = prepared[0]
            if out >= 0:
                outputs[out] = mut.commit()
            else:
                mut.discard()
            prepared.pop(0)
        return outputs
    finally:
        for _, mut in prepared:
            try:
                mut.discard()
            except Exception:  # noqa: BLE001 - best effort cleanup after a failure
                pass


# ---------------------------------------------------------------------------------- setup


def _setup(ctx: OpContext, op: ExecOp, inputs: list[Any], executor: Executor,
           mounted: ExitStack, prepared: list) -> tuple[Path, ProcessSpec]:
    store = ctx.store
    root_mount = op.mounts[0]
    root_ref = _input(op, inputs, root_mount)
    # the system stubs beneath the rootfs where the snapshotter can (see Executor.underlay)
    root_mut = store.prepare(root_ref, trusted=root_mount.readonly,
                             underlay=executor.underlay())
    prepared.append((-1 if root_mount.readonly else root_mount.output, root_mut))
    rootfs = Path(mounted.enter_context(root_mut.mount()))

    caches = _acquire_caches(ctx, op, mounted)
    mounts: list[ContainerMount] = []
    for m in sorted(op.mounts[1:], key=lambda m: _parts(m.dest)):
        if m.type == MOUNT_TMPFS:
            mounts.append(TmpfsMount(m.dest, m.tmpfs_size))
        elif m.type == MOUNT_CACHE:
            path = caches[m.dest]
            mounts.append(BindMount(m.dest, path, readonly=m.readonly))
        else:
            ref = _input(op, inputs, m)
            if m.readonly:
                if ref is None:
                    path = Path(tempfile.mkdtemp(prefix="empty-", dir=executor.state_dir))
                    mounted.callback(remove_tree, path)
                else:
                    path = Path(mounted.enter_context(store.view(ref)))
            else:
                mut = store.prepare(ref)
                prepared.append((m.output, mut))
                path = Path(mounted.enter_context(mut.mount()))
            mounts.append(BindMount(m.dest, _select(ctx, path, m), readonly=m.readonly))

    uid, gid, groups = resolve_user(rootfs, op.user, vertex=ctx.vertex)
    if not any(_under(op.cwd, m.dest) for m in mounts):
        try:
            _make_cwd(rootfs, op.cwd, uid, gid)
        except OSError as e:  # e.g. a cwd that is too long once under the rootfs's path
            if is_no_space(e):
                raise
            raise InputError(f"cannot create the working directory {op.cwd[:200]}: "
                             f"{e.strerror or e}", vertex=ctx.vertex, path=op.cwd) from None
    spec = ProcessSpec(args=list(op.args), env=list(op.env), cwd=op.cwd or "/", uid=uid,
                       gid=gid, additional_gids=groups, hostname=op.hostname,
                       network=op.network, readonly_rootfs=root_mount.readonly, mounts=mounts)
    return rootfs, spec


def _acquire_caches(ctx: OpContext, op: ExecOp, mounted: ExitStack) -> dict[str, Path]:
    """The directory of each cache mount, by mount point. Mounts of one id that are shared
    or locked get one directory, acquired once, locked if any of them is (as BuildKit's
    testDuplicateCacheMount expects; taking one lock twice would wait for ourselves); each
    private mount gets an instance of its own. Ids are taken in sorted order, so two execs
    waiting on the same locked ids never wait for each other in a circle."""
    cache = CacheMounts(Path(ctx.root))
    wanted: dict[str, str] = {}  # id -> sharing of its shared/locked mounts
    for m in op.mounts[1:]:
        if m.type == MOUNT_CACHE and m.sharing != SHARING_PRIVATE:
            cid = m.cache_id or m.dest
            if wanted.get(cid) != SHARING_LOCKED:
                wanted[cid] = m.sharing
    held = {cid: Path(mounted.enter_context(cache.acquire(cid, wanted[cid], ctx.cancelled)))
            for cid in sorted(wanted)}
    out: dict[str, Path] = {}
    for m in sorted(op.mounts[1:], key=lambda m: (m.cache_id or m.dest, _parts(m.dest))):
        if m.type != MOUNT_CACHE:
            continue
        cid = m.cache_id or m.dest
        if m.sharing == SHARING_PRIVATE:
            out[m.dest] = Path(mounted.enter_context(cache.acquire(cid, m.sharing, ctx.cancelled)))
        else:
            out[m.dest] = held[cid]
    if out:
        # a last holder may have died with its container still writing there
        reap(ctx.root)
    return out


def _validate(ctx: OpContext, op: ExecOp) -> None:
    if not op.args:
        raise InputError("exec has no command", vertex=ctx.vertex)
    if not op.mounts or _parts(op.mounts[0].dest) != ():
        raise InputError("exec has no rootfs mount at /", vertex=ctx.vertex)
    if op.network not in (NETWORK_NONE, NETWORK_HOST):
        raise UnsupportedError(f"unsupported network mode {op.network!r}", vertex=ctx.vertex)
    for m in op.mounts:
        if m.type not in (MOUNT_BIND, MOUNT_CACHE, MOUNT_TMPFS):
            raise UnsupportedError(f"unsupported mount type {m.type!r} at {m.dest}",
                                   vertex=ctx.vertex, path=m.dest)
        if m.type == MOUNT_BIND and m.input >= len(op.inputs):
            raise InputError(f"mount {m.dest} refers to missing input {m.input}",
                             vertex=ctx.vertex, path=m.dest)


def _input(op: ExecOp, inputs: list[Any], m: Mount) -> Any:
    return inputs[m.input] if 0 <= m.input < len(inputs) else None


def _select(ctx: OpContext, path: Path, m: Mount) -> Path:
    if not m.selector or _parts(m.selector) == ():
        return path
    src = resolve_in_root(path, m.selector)
    if not os.path.lexists(src):
        raise InputError(f"mount {m.dest}: {m.selector} not found in its input",
                         vertex=ctx.vertex, path=m.selector)
    return src


def _make_cwd(rootfs: Path, cwd: str, uid: int, gid: int) -> None:
    """Create the working directory (and missing parents) owned by the process's user."""
    target = resolve_in_root(rootfs, cwd or "/")
    missing = []
    p = target
    while not os.path.lexists(p) and p != rootfs:
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        os.mkdir(d, 0o755)
        os.chown(d, uid, gid)


def _check(ctx: OpContext, op: ExecOp, result: RunResult) -> None:
    if result.cancelled:
        raise SolveCancelledError("cancelled", vertex=ctx.vertex)
    if result.exit_code == 0:
        return
    quoted = json.dumps(command(op), ensure_ascii=False)
    if result.runc_error:
        msg = f"process {quoted} did not complete successfully: {result.runc_error}"
    else:
        msg = (f"process {quoted} did not complete successfully: "
               f"exit code: {result.exit_code}")
    raise SolveError(msg, vertex=ctx.vertex, name=ctx.name, command=command(op),
                     log_tail=result.tail[-LOG_TAIL_LINES:])


# ---------------------------------------------------------------------------------- users


def resolve_user(rootfs: Path, user: str, *, vertex: str | None = None
                 ) -> tuple[int, int, list[int]]:
    """(uid, gid, supplementary gids) for "uid[:gid]" or "name[:group]", names looked up in
    the rootfs's own /etc/passwd and /etc/group (like runc/libcontainer's GetExecUser)."""
    if not user:
        return 0, 0, []
    uspec, _, gspec = user.partition(":")
    passwd = _read_db(rootfs, "/etc/passwd")
    groups = _read_db(rootfs, "/etc/group")
    entry = None
    if uspec.isascii() and uspec.isdigit():
        uid = _int(uspec, user, vertex)
        entry = next((e for e in passwd if len(e) > 3 and e[2] == uspec), None)
    else:
        entry = next((e for e in passwd if len(e) > 3 and e[0] == uspec), None)
        if entry is None:
            raise InputError(f"unable to find user {uspec}: no matching entries in passwd file",
                             vertex=vertex)
        uid = _int(entry[2], user, vertex)
    gid = _int(entry[3], user, vertex) if entry is not None else 0
    extra: list[int] = []
    if gspec:
        if gspec.isascii() and gspec.isdigit():
            gid = _int(gspec, user, vertex)
        else:
            g = next((e for e in groups if len(e) > 2 and e[0] == gspec), None)
            if g is None:
                raise InputError(f"unable to find group {gspec}: no matching entries in group "
                                 "file", vertex=vertex)
            gid = _int(g[2], user, vertex)
    elif entry is not None:
        for g in groups:
            if len(g) > 3 and entry[0] in g[3].split(","):
                extra.append(_int(g[2], user, vertex))
    extra = sorted(set(x for x in extra if x != gid))
    return uid, gid, extra


def _read_db(rootfs: Path, path: str) -> list[list[str]]:
    try:
        text = resolve_in_root(rootfs, path).read_text(errors="replace")
    except (OSError, ValueError):
        return []
    return [line.split(":") for line in text.splitlines()
            if line.strip() and not line.startswith("#")]


def _int(value: str, user: str, vertex: str | None) -> int:
    """An id of user's (from the spec or the rootfs's passwd/group), in range."""
    try:
        n = int(value) if value.isascii() else -1
    except ValueError:
        n = -1
    if not 0 <= n <= MAX_ID:
        raise InputError(f"invalid id {value[:40]!r} for user {user!r} (0 to {MAX_ID})",
                         vertex=vertex)
    return n


# ---------------------------------------------------------------------------------- paths


def _parts(path: str) -> tuple[str, ...]:
    return tuple(p for p in path.split("/") if p and p != ".")


def _under(path: str, dest: str) -> bool:
    p, d = _parts(path), _parts(dest)
    return len(d) > 0 and p[:len(d)] == d
