"""local://NAME: a directory of the user's machine (`--local NAME=PATH`), filtered by the
source's include/exclude patterns and synced into a new snapshot. Its key is a checksum of
the selected files' content and metadata: taken of the host directory to look the cache
up, and of the synced snapshot (what was actually copied) for what is recorded, so a file
changed while it was copied never stores one content under another's key."""

from __future__ import annotations

import os
import stat
import threading
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

from llb.fsutil import contains_wildcards, copy_tree
from llb.ops import Copy, SourceOp
from llb.snapshot import Ref
from llb.solver.checksum import CopiedFiles, FileHashMemo, copy_matches, tree_checksum
from llb.solver.errors import SolveCancelledError, InputError
from llb.solver.ops.context import OpContext
from llb.solver.patterns import PathFilter, walk
from llb.solver.sources import SourceEnv


def _directory(op: SourceOp, local_dirs: Mapping[str, Path], vertex: str | None) -> Path:
    name = op.locator
    path = local_dirs.get(name)
    if path is None:
        raise InputError(f"no --local mapping for local source {name!r} (pass --local {name}=PATH)",
                         vertex=vertex)
    return Path(path)


def check(op: SourceOp, env: SourceEnv, vertex: str) -> None:
    """The source needs a `--local NAME=DIR` mapping to a directory, and valid include and
    exclude patterns."""
    try:
        PathFilter(op.include, op.exclude)
    except InputError as e:
        e.vertex = vertex
        raise
    path = _directory(op, env.local_dirs, vertex)
    if not path.is_dir():
        raise InputError(f"--local {op.locator}={path}: not a directory", vertex=vertex,
                         path=os.fspath(path))


def check_copies(op: SourceOp, env: SourceEnv, vertex: str, copies: list[Copy]) -> None:
    """A plain copy source must be among the files the source selects (a wildcard may match
    nothing only when the copy allows it)."""
    top = _directory(op, env.local_dirs, vertex)
    if not op.include and not op.exclude:
        for c in copies:
            if copy_matches(top, c):
                continue
            if c.allow_wildcard and c.allow_empty_wildcard and contains_wildcards(c.src):
                continue
            raise InputError(f"copy source {c.src} not found", vertex=vertex, path=c.src)
        return
    plain = [c for c in copies if not (c.allow_wildcard and contains_wildcards(c.src))]
    if not plain:
        return
    selected = {rel for rel, _ in walk(top, PathFilter(op.include, op.exclude))}
    for c in plain:
        rel = os.path.normpath("/" + c.src).strip("/")
        if rel and rel not in selected:
            raise InputError(f"copy source {c.src} not found", vertex=vertex, path=c.src)


# (vertex, directory) -> the memo of its last content key, whose file digests the snapshot's
# checksum reuses for files unchanged since (a few kept: a key that hit needs no snapshot)
_KEYED: OrderedDict[tuple[str, str], FileHashMemo] = OrderedDict()
_KEYED_KEPT = 16
_keyed_lock = threading.Lock()


def content_key(op: SourceOp, env: SourceEnv, vertex: str) -> str | None:
    """A checksum of the selected files (memoised in the cache DB by file identity)."""
    path = os.path.abspath(_directory(op, env.local_dirs, vertex))
    memo = FileHashMemo(env.db, path)
    key = tree_checksum(path, PathFilter(op.include, op.exclude), memo)
    memo.save()
    with _keyed_lock:
        _KEYED[(vertex, path)] = memo
        _KEYED.move_to_end((vertex, path))
        while len(_KEYED) > _KEYED_KEPT:
            _KEYED.popitem(last=False)
    return key


def snapshot(ctx: OpContext, op: SourceOp) -> Ref | None:
    """Sync the selected files into a new snapshot; `ctx.content_key` is set to the
    checksum of what it holds (the files may have changed since content_key() read them)."""
    src = _directory(op, ctx.local_dirs, ctx.vertex)
    with _keyed_lock:
        memo = _KEYED.pop((ctx.vertex, os.path.abspath(src)), None)
    m = ctx.store.prepare(None, trusted=True)
    try:
        with m.mount() as dest:
            sync(src, Path(dest), PathFilter(op.include, op.exclude), ctx)
            # file digests the key took are reused for files unchanged since (CopiedFiles)
            ctx.content_key = tree_checksum(dest, None, CopiedFiles(memo, dest) if memo else None)
        if ctx.cancelled.is_set():
            raise SolveCancelledError("cancelled", vertex=ctx.vertex)
        return m.commit()
    except BaseException:
        m.discard()
        raise


def sync(src: Path, dest: Path, flt: PathFilter, ctx: OpContext | None = None) -> None:
    """Copy the entries of `src` the filter selects into the empty directory `dest`:
    content, modes, owners, mtimes, xattrs, symlinks, special files, and hardlinks within
    the selection (llb.fsutil.copy_tree); sockets are no content and stay behind. Stops
    once the solve is cancelled."""
    selected = {rel for rel, st in walk(src, flt) if not stat.S_ISSOCK(st.st_mode)}

    def check() -> None:
        if ctx is not None and ctx.cancelled.is_set():
            raise SolveCancelledError("cancelled", vertex=ctx.vertex)

    copy_tree(src, dest, into=True, only=selected, check=check)
