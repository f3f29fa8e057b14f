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
from dataclasses import dataclass, field

from llb.ops import Copy
from llb.snapshot.copy import remove_tree as remove_all  # os.RemoveAll: p and all below it
from llb.snapshot.errors import PathEscapeError, SnapshotError
from llb.snapshot.paths import resolve_in_root
from llb.solver.errors import SolveCancelledError
from llb.solver.ops import file_meta
from llb.solver.ops.file_errors import CopySourceNotFoundError, FileActionError
from llb.solver.ops.file_patterns import clean, go_match, split_wildcards
from llb.solver.patterns import PathFilter

Owner = tuple[int, int]


def in_root(root: str, p: str) -> str:
    """p as the user sees it: absolute inside root."""
    rel = os.path.relpath(p, root)
    return "/" if rel == "." else "/" + rel


def root_path(root: str, p: str, follow: bool) -> str:
    """fsutil's rootPath: resolve p inside root, the final component only when follow."""
    p = clean("/" + p)
    if p == "/":
        return root
    try:
        return str(resolve_in_root(root, p, follow_final=follow))
    except PathEscapeError:
        raise
    except SnapshotError as e:
        raise FileNotFoundError(2, str(e), p) from None


def resolve_wildcards(root: str, pattern: str, follow: bool) -> list[str]:
    """Paths (relative to root) matching a wildcard path, in walk order; [pattern's literal
    path] when it holds no wildcard. A missing base directory matches nothing."""
    base, rest = split_wildcards(pattern)
    if not rest:
        return [base]
    start = root_path(root, base, follow)
    depth = None if "[" in rest else rest.count("/") + 1
    out: list[str] = []

    def walk(d: str, rel: str, level: int) -> None:
        try:
            names = sorted(os.listdir(d))
        except (FileNotFoundError, NotADirectoryError):
            return
        for name in names:
            p = os.path.join(d, name)
            r = f"{rel}/{name}" if rel else name
            st = os.lstat(p)
            if go_match(rest, r):
                out.append(os.path.relpath(p, root))
                continue
            if stat.S_ISDIR(st.st_mode) and (depth is None or level + 1 < depth):
                walk(p, r, level + 1)

    try:
        if stat.S_ISDIR(os.lstat(start).st_mode):
            walk(start, "", 0)
    except FileNotFoundError:
        pass
    return out


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
    times = (action.created, action.created) if action.created != -1 else None
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
    copier = _Copier(dst_root, owner, times, mode, flt, action.always_replace_existing, [],
                     cancelled or threading.Event())
    for src in matches:
        _copy_one(copier, src_root, src, dst_root, dest, action)
    if times is not None:  # directories the action created: `created` once they are full
        for d in reversed(copier.touched):
            file_meta.set_times(d, times)


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
    c.copy(followed, "", dst, False, not action.include)


@dataclass
class _Pending:
    src: str
    dst: str
    copied: bool
    created: bool = False


@dataclass
class _Copier:
    root: str
    owner: Owner | None
    times: tuple[int, int] | None
    mode: int | None
    flt: PathFilter
    always_replace: bool
    touched: list[str]
    cancelled: threading.Event
    inodes: dict[tuple[int, int], str] = field(default_factory=dict)
    parents: list[_Pending] = field(default_factory=list)

    def copy(self, src: str, comp: str, target: str, overwrite: bool, inherited: bool) -> None:
        """fsutil copier.copy: one source entry (recursively) onto target. `inherited`:
        an ancestor matched an include pattern (or there are none), so this entry is in."""
        if self.cancelled.is_set():
            raise SolveCancelledError("cancelled")
        st = os.lstat(src)
        is_dir = stat.S_ISDIR(st.st_mode)
        include, below = True, inherited
        if comp:
            if self.flt.excluded(comp, is_dir):
                return  # an excluded directory is pruned with everything below it
            include = below = inherited or self.flt.included(comp, is_dir)
        try:
            tst = os.lstat(target)
        except FileNotFoundError:
            tst = None
        if include:
            if self.always_replace and tst is not None and not (
                    is_dir and stat.S_ISDIR(tst.st_mode)):
                remove_all(target)
                tst = None
            self._create_parents(overwrite)
        if not is_dir:
            if not include:
                return
            if tst is not None:
                if stat.S_ISDIR(tst.st_mode):
                    raise FileActionError(
                        f"cannot replace directory {in_root(self.root, target)} with a file",
                        path=in_root(self.root, target))
                os.unlink(target)
        copy_info = include
        mode = st.st_mode
        if is_dir:
            created = self._copy_directory(src, comp, target, st, overwrite, include, below)
            if not overwrite:
                copy_info = created
        elif stat.S_ISREG(mode):
            link = None
            if st.st_nlink > 1:
                key = (st.st_dev, st.st_ino)
                link = self.inodes.get(key)
                if link is None:
                    self.inodes[key] = target
            if link is not None:
                os.link(link, target, follow_symlinks=False)
            else:
                file_meta.copy_data(src, target)
        elif stat.S_ISLNK(mode):
            os.symlink(os.readlink(src), target)
        else:
            file_meta.make_node(st, target)
        if copy_info:
            self._copy_info(src, st, target)

    def _copy_info(self, src: str, st: os.stat_result, target: str) -> None:
        uid, gid = self.owner if self.owner is not None else (st.st_uid, st.st_gid)
        m = st.st_mode
        if self.mode is not None:
            m = (m & ~0o777) | self.mode
        times = self.times if self.times is not None else (st.st_atime_ns, st.st_mtime_ns)
        file_meta.apply_meta(target, m, uid, gid, times, file_meta.xattrs(src))

    def _copy_directory(self, src: str, comp: str, dst: str, st: os.stat_result,
                        overwrite: bool, include: bool, below: bool) -> bool:
        pending = _Pending(src, dst, copied=False)
        created = False
        if include:
            created = self._dir_only(dst, st, overwrite)
            pending.copied = True
        self.parents.append(pending)
        try:
            for name in sorted(os.listdir(src)):
                self.copy(os.path.join(src, name), f"{comp}/{name}" if comp else name,
                          os.path.join(dst, name), True, below)
        finally:
            self.parents.pop()
        if pending.created:  # created late for an included descendant: metadata after it
            self._copy_info(src, os.lstat(src), dst)
        return created

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
