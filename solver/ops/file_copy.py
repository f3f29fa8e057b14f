"""The copy action: tonistiigi/fsutil's copier (BuildKit v0.11.6) re-done over in-root paths.

Where a directory lands (dest ending in "/", an existing dest directory, copy_dir_contents_only),
what is replaced, which metadata is copied or overridden and how include/exclude patterns
prune the walk follow BuildKit. Every existing destination entry that gets new content is
replaced by a new inode (never written in place), so a snapshot built from hardlinks of its
parent is never modified through this op."""

from __future__ import annotations

import os
import stat
import threading

from llb.fsutil import Meta, apply_meta, copy_entry, read_xattrs, remove_tree, set_times, walk
from llb.ops import Copy
from llb.paths import clean
from llb.snapshot.paths import resolve_in_root
from llb.solver.errors import SolveCancelledError
from llb.solver.ops.file_errors import CopySourceNotFoundError, FileActionError
from llb.solver.patterns import PathFilter, resolve_wildcards, root_path

Owner = tuple[int, int]


def in_root(root: str, p: str) -> str:
    """p as the user sees it: absolute inside root."""
    rel = os.path.relpath(p, root)
    return "/" if rel == "." else "/" + rel


def mkdir_all(root: str, path: str, mode: int, owner: Owner | None,
              created: list[str]) -> None:
    """Go's MkdirAll below root: create missing directories (mode, then owner), appending
    each new one to `created`; an existing non-directory on the way is an error."""
    rel = os.path.relpath(path, root)
    if rel == ".":
        return
    cur = root
    for comp in rel.split("/"):
        cur = os.path.join(cur, comp)
        try:
            st = os.lstat(cur)
        except FileNotFoundError:
            os.mkdir(cur, 0o700)
            os.chmod(cur, mode)
            if owner is not None:
                os.chown(cur, *owner, follow_symlinks=False)
            created.append(cur)
            continue
        if not stat.S_ISDIR(st.st_mode):
            raise FileActionError(f"mkdir {in_root(root, cur)}: not a directory",
                                  path=in_root(root, cur))




def _go_base(p: str) -> str:
    p = p.rstrip("/")
    if not p:
        return "/"
    return p.rsplit("/", 1)[-1]


def _go_split(p: str) -> tuple[str, str]:
    i = p.rfind("/")
    return p[: i + 1], p[i + 1:]


def copy(dst_root: str, src_root: str, action: Copy, owner: Owner | None,
         cancelled: threading.Event | None = None) -> None:
    """Run one copy action from the tree at src_root into the mutable tree at dst_root;
    stops with SolveCancelledError at the next entry once `cancelled` is set."""
    created = action.created if action.created != -1 else None
    dest = action.dest
    if not action.create_dest_path:
        p = str(resolve_in_root(dst_root, clean("/" + dest)))
        if not os.path.lexists(os.path.dirname(p)):
            raise FileActionError(
                f"destination directory of {dest} does not exist (use create_dest_path)",
                path=dest)
    if action.allow_wildcard:
        matches = resolve_wildcards(src_root, action.src, action.follow_symlinks)
        if not matches:
            if action.allow_empty_wildcard:
                return
            raise CopySourceNotFoundError(f"copy source {action.src} not found", path=action.src)
    else:
        matches = [action.src]
    try:
        flt = PathFilter(action.include, action.exclude)
    except Exception as e:  # pathspec's own errors for a malformed pattern
        raise FileActionError(f"bad include/exclude pattern: {e}", path=action.src) from None
    mode = action.mode & 0o777 if action.mode != -1 else None
    copier = _Copier(dst_root, owner, created, mode, flt, action.always_replace_existing, [],
                     cancelled or threading.Event())
    for src in matches:
        _copy_one(copier, src_root, src, dst_root, dest, action)
    if created is not None:  # directories the action created: `created` once they are full
        for d in reversed(copier.touched):
            set_times(d, created)


def _copy_one(c: _Copier, src_root: str, src: str, dst_root: str, dest: str,
              action: Copy) -> None:
    d, f = _go_split(dest)
    ensure = dest if f in ("", ".") else d
    if ensure:
        mkdir_all(dst_root, str(resolve_in_root(dst_root, ensure)), 0o755, c.owner, c.touched)
    dst = str(resolve_in_root(dst_root, clean("/" + dest)))
    try:
        followed = root_path(src_root, src, action.follow_symlinks)
        st = os.lstat(followed)
    except (FileNotFoundError, NotADirectoryError):
        raise CopySourceNotFoundError(f"copy source {clean('/' + src)} not found",
                                      path=clean("/" + src)) from None
    try:
        dst_st = os.stat(dst)
    except (FileNotFoundError, NotADirectoryError):
        dst_st = None
    is_dir = stat.S_ISDIR(st.st_mode)
    contents = action.copy_dir_contents_only
    if (not contents and is_dir and dst_st is not None) or (
            not is_dir and dst_st is not None and stat.S_ISDIR(dst_st.st_mode)):
        base = _go_base(src)
        if base != "/":
            dst = os.path.join(dst, base)
    target = os.path.dirname(dst)
    if contents and is_dir and dst_st is None:
        target = dst
    mkdir_all(dst_root, target, 0o755, c.owner, c.touched)
    c.copy(followed, dst, not action.include)


# plain classes, not dataclasses: dataclasses loads inspect, ast, dis and tokenize (~40M
# instructions), which every cold solve with a FileOp paid for, copy or not


class _Pending:
    """A source directory whose destination may be created late (include patterns)."""

    __slots__ = ("src", "dst", "copied", "created")

    def __init__(self, src: str, dst: str, copied: bool, created: bool = False):
        self.src, self.dst, self.copied, self.created = src, dst, copied, created


class _Dir:
    """A source directory being copied: what to do once its contents are done."""

    __slots__ = ("pending", "st", "below", "copy_info")

    def __init__(self, pending: _Pending, st: os.stat_result, below: bool, copy_info: bool):
        self.pending = pending
        self.st = st
        self.below = below  # its entries are in (an include pattern matched here or above)
        self.copy_info = copy_info  # give the destination the source's metadata at the end


class _Copier:
    """One copy action's walk: its options, the hardlinks seen and the open directories."""

    def __init__(self, root: str, owner: Owner | None, created: int | None, mode: int | None,
                 flt: PathFilter, always_replace: bool, touched: list[str],
                 cancelled: threading.Event):
        self.root = root
        self.owner = owner
        self.created = created
        self.mode = mode
        self.flt = flt
        self.always_replace = always_replace
        self.touched = touched
        self.cancelled = cancelled
        self.inodes: dict[tuple[int, int], str] = {}
        self.parents: list[_Pending] = []

    def copy(self, src: str, target: str, inherited: bool) -> None:
        """fsutil's copier.copy of one source (a directory with everything below it, in
        the toolkit's walk order, at any depth) onto target. `inherited`: no include
        patterns, so everything is in."""
        st = os.lstat(src)
        top = self.visit(src, "", target, st, False, inherited)
        if top is None:
            return
        dirs = [(top, target)]
        for e in walk(src, leave=True):
            if e.leaving:
                self.leave(*dirs.pop())
                continue
            if self.cancelled.is_set():
                raise SolveCancelledError("cancelled")
            dst = f"{dirs[-1][1]}/{e.name}"
            sub = self.visit(e.path, e.rel, dst, e.st, True, dirs[-1][0].below)  # type: ignore[arg-type]
            if sub is not None:
                dirs.append((sub, dst))
            elif e.is_dir:
                e.prune()
        self.leave(top, target)

    def visit(self, src: str, comp: str, target: str, st: os.stat_result, overwrite: bool,
              inherited: bool) -> _Dir | None:
        """Copy one source entry onto target; for a directory, start it and return what
        its end needs (None: excluded, nothing below it is copied)."""
        if self.cancelled.is_set():
            raise SolveCancelledError("cancelled")
        is_dir = stat.S_ISDIR(st.st_mode)
        include, below = True, inherited
        if comp:
            if self.flt.excluded(comp, is_dir):
                return None  # an excluded directory is pruned with everything below it
            include = below = inherited or self.flt.included(comp, is_dir)
        try:
            tst: os.stat_result | None = os.lstat(target)
        except FileNotFoundError:
            tst = None
        if include:
            if self.always_replace and tst is not None and not (
                    is_dir and stat.S_ISDIR(tst.st_mode)):
                remove_tree(target)
                tst = None
            self._create_parents(overwrite)
        if is_dir:
            pending = _Pending(src, target, copied=False)
            created = False
            if include:
                created = self._dir_only(target, st, overwrite)
                pending.copied = True
            self.parents.append(pending)
            return _Dir(pending, st, below, created if not overwrite else include)
        if not include:
            return None
        if tst is not None:
            if stat.S_ISDIR(tst.st_mode):
                raise FileActionError(
                    f"cannot replace directory {in_root(self.root, target)} with a file",
                    path=in_root(self.root, target))
            os.unlink(target)
        if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            link = self.inodes.get(key)
            if link is not None:
                os.link(link, target, follow_symlinks=False)
                return None
            self.inodes[key] = target
        copy_entry(src, target, st, meta=self._meta(src, st))
        return None

    def leave(self, d: _Dir, target: str) -> None:
        """A directory's contents are done: its metadata, now that nothing below changes."""
        self.parents.pop()
        if d.pending.created:  # created late for an included descendant: metadata after it
            apply_meta(target, self._meta(d.pending.src, os.lstat(d.pending.src)))
        elif d.copy_info:
            apply_meta(target, self._meta(d.pending.src, d.st))

    def _meta(self, src: str, st: os.stat_result) -> Meta:
        """The metadata a copied entry gets: the source's, with the action's owner, mode
        and time where it sets them."""
        uid, gid = self.owner if self.owner is not None else (st.st_uid, st.st_gid)
        m = st.st_mode
        if self.mode is not None:
            m = (m & ~0o777) | self.mode
        if self.created is not None:
            mtime, atime = self.created, self.created
        else:
            mtime, atime = st.st_mtime_ns, st.st_atime_ns
        return Meta(m, uid, gid, mtime, atime, read_xattrs(src))

    def _create_parents(self, overwrite: bool) -> None:
        """Create the directories delayed by include patterns once something below matches."""
        for p in self.parents:
            if p.copied:
                continue
            st = os.stat(p.src)
            if not stat.S_ISDIR(st.st_mode):
                raise FileActionError(f"{p.src} is not a directory")
            p.created = self._dir_only(p.dst, st, overwrite)
            p.copied = True

    def _dir_only(self, dst: str, st: os.stat_result, overwrite: bool) -> bool:
        try:
            tst = os.lstat(dst)
        except FileNotFoundError:
            os.mkdir(dst, 0o700)
            os.chmod(dst, stat.S_IMODE(st.st_mode))
            return True
        if not stat.S_ISDIR(tst.st_mode):
            raise FileActionError(
                f"cannot copy a directory to non-directory {in_root(self.root, dst)}",
                path=in_root(self.root, dst))
        if overwrite:
            os.chmod(dst, stat.S_IMODE(st.st_mode))
        return False
