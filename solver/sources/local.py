"""local://NAME: a directory of the user's machine (`--local NAME=PATH`), filtered by the
source's include/exclude patterns and synced into a new snapshot. Its key is a checksum of
the selected files' content and metadata: taken of the host directory to look the cache
up, and of the synced snapshot (what was actually copied) for what is recorded, so a file
changed while it was copied never stores one content under another's key."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Mapping
from pathlib import Path

from llb.ops import Copy, SourceOp
from llb.snapshot import Ref
from llb.solver.checksum import copy_matches, local_checksum, tree_checksum
from llb.solver.errors import SolveCancelledError, InputError
from llb.solver.ops.context import OpContext
from llb.solver.patterns import PathFilter, has_wildcard, walk
from llb.solver.sources import SourceEnv


def _directory(op: SourceOp, local_dirs: Mapping[str, Path], vertex: str | None) -> Path:
    name = op.locator
    path = local_dirs.get(name)
    if path is None:
        raise InputError(f"no --local mapping for local source {name!r} (pass --local {name}=PATH)",
                         vertex=vertex)
    return Path(path)


def check(op: SourceOp, env: SourceEnv, vertex: str) -> None:
    """The source needs a `--local NAME=DIR` mapping to a directory."""
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
            if c.allow_wildcard and c.allow_empty_wildcard and has_wildcard(c.src):
                continue
            raise InputError(f"copy source {c.src} not found", vertex=vertex, path=c.src)
        return
    plain = [c for c in copies if not (c.allow_wildcard and has_wildcard(c.src))]
    if not plain:
        return
    selected = {rel for rel, _ in walk(top, PathFilter(op.include, op.exclude))}
    for c in plain:
        rel = os.path.normpath("/" + c.src).strip("/")
        if rel and rel not in selected:
            raise InputError(f"copy source {c.src} not found", vertex=vertex, path=c.src)


def content_key(op: SourceOp, env: SourceEnv, vertex: str) -> str | None:
    """A checksum of the selected files (memoised in the cache DB by file identity)."""
    return local_checksum(_directory(op, env.local_dirs, vertex), op.include, op.exclude,
                          db=env.db)


def snapshot(ctx: OpContext, op: SourceOp) -> Ref | None:
    """Sync the selected files into a new snapshot; `ctx.content_key` is set to the
    checksum of what it holds (the files may have changed since content_key() read them)."""
    src = _directory(op, ctx.local_dirs, ctx.vertex)
    m = ctx.store.prepare(None, trusted=True)
    try:
        with m.mount() as dest:
            sync(src, Path(dest), PathFilter(op.include, op.exclude), ctx)
            ctx.content_key = tree_checksum(dest)
        if ctx.cancelled.is_set():
            raise SolveCancelledError("cancelled", vertex=ctx.vertex)
        return m.commit()
    except BaseException:
        m.discard()
        raise


def sync(src: Path, dest: Path, flt: PathFilter, ctx: OpContext | None = None) -> None:
    """Copy the entries of `src` the filter selects into `dest`: content, modes, owners,
    mtimes, xattrs, symlinks, special files, and hardlinks within the selection."""
    links: dict[tuple[int, int], str] = {}
    dirs: list[tuple[str, os.stat_result]] = []
    s = os.fspath(src)
    d = os.fspath(dest)
    for i, (rel, st) in enumerate(walk(s, flt)):
        if ctx is not None and i % 256 == 0 and ctx.cancelled.is_set():
            raise SolveCancelledError("cancelled", vertex=ctx.vertex)
        sp = os.path.join(s, rel)
        dp = os.path.join(d, rel)
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            os.mkdir(dp, 0o700)
            dirs.append((rel, st))
            continue
        if stat.S_ISREG(mode) and st.st_nlink > 1:
            first = links.get((st.st_dev, st.st_ino))
            if first is not None:
                os.link(os.path.join(d, first), dp)
                continue
            links[(st.st_dev, st.st_ino)] = rel
        if stat.S_ISREG(mode):
            shutil.copyfile(sp, dp, follow_symlinks=False)
        elif stat.S_ISLNK(mode):
            os.symlink(os.readlink(sp), dp)
        elif stat.S_ISFIFO(mode):
            os.mkfifo(dp)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            os.mknod(dp, mode, st.st_rdev)
        else:  # sockets: not content
            continue
        _meta(sp, dp, st)
    for rel, st in reversed(dirs):  # children first so their writes do not touch mtimes
        _meta(os.path.join(s, rel), os.path.join(d, rel), st)


def _meta(sp: str, dp: str, st: os.stat_result) -> None:
    islink = stat.S_ISLNK(st.st_mode)
    try:
        os.lchown(dp, st.st_uid, st.st_gid)
    except PermissionError:
        pass
    try:
        for n in os.listxattr(sp, follow_symlinks=False):
            try:
                os.setxattr(dp, n, os.getxattr(sp, n, follow_symlinks=False), follow_symlinks=False)
            except OSError:
                pass
    except OSError:
        pass
    if not islink:
        os.chmod(dp, stat.S_IMODE(st.st_mode))
    os.utime(dp, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
