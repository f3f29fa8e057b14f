"""Source ops: scratch (the empty tree), local directories (synced from `--local NAME=PATH`
with include/exclude) and images (not supported yet)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from llb.solver.errors import InputError, UnsupportedError
from llb.solver.names import source_name as name
from llb.solver.ops.context import OpContext
from llb.solver.patterns import PathFilter, walk

__all__ = ["content_key", "local_name", "name", "run", "sync"]

_LOCAL = "local://"


def local_name(op: Any) -> str | None:
    """The NAME of a `local://NAME` source, else None."""
    ident = op.identifier
    return ident[len(_LOCAL):] if ident.startswith(_LOCAL) else None


def content_key(op: Any, locals: dict[str, Path], *, vertex: str | None = None,
                db: Any = None) -> str | None:
    """What the source's cache key is made of: a local directory's content checksum; None
    for scratch. Image sources are not supported yet."""
    ident = op.identifier
    if ident == "scratch":
        return None
    lname = local_name(op)
    if lname is not None:
        from llb.solver.checksum import local_checksum

        return local_checksum(_local_path(lname, locals, vertex), op.include, op.exclude, db=db)
    raise UnsupportedError(f"source {ident}: not supported yet", vertex=vertex)


def run(ctx: OpContext, op: Any, inputs: list) -> list:
    """Scratch is the empty tree; a local source is synced into a new snapshot."""
    ident = op.identifier
    if ident == "scratch":
        return [None]
    lname = local_name(op)
    if lname is None:
        raise UnsupportedError(f"source {ident}: not supported yet", vertex=ctx.vertex)
    src = _local_path(lname, ctx.locals, ctx.vertex)
    m = ctx.store.prepare(None, trusted=True)
    try:
        with m.mount() as dest:
            sync(src, Path(dest), PathFilter(op.include, op.exclude), ctx)
        if ctx.cancelled.is_set():
            raise _cancelled(ctx)
        return [m.commit()]
    except BaseException:
        m.discard()
        raise


def _cancelled(ctx: OpContext):
    from llb.solver.errors import CancelledError

    return CancelledError("cancelled", vertex=ctx.vertex)


def _local_path(lname: str, locals: dict[str, Path], vertex: str | None) -> Path:
    path = locals.get(lname)
    if path is None:
        raise InputError(f"no --local mapping for local source {lname!r} (pass --local {lname}=PATH)",
                         vertex=vertex)
    return Path(path)


def sync(src: Path, dest: Path, flt: PathFilter, ctx: OpContext | None = None) -> None:
    """Copy the entries of `src` the filter selects into `dest`: content, modes, owners,
    mtimes, xattrs, symlinks, special files, and hardlinks within the selection."""
    import shutil  # here: shutil loads the compression modules, a start-up cost for every solve

    links: dict[tuple[int, int], str] = {}
    dirs: list[tuple[str, os.stat_result]] = []
    s = os.fspath(src)
    d = os.fspath(dest)
    for i, (rel, st) in enumerate(walk(s, flt)):
        if ctx is not None and i % 256 == 0 and ctx.cancelled.is_set():
            raise _cancelled(ctx)
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
