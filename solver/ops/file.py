"""FileOp: mkdir, mkfile, rm and copy, applied in order to a mutable snapshot of inputs[0].

Semantics are BuildKit v0.11.6's file backend (docs/design.md "File actions"); every path is
resolved inside the tree (`..` and symlinks never leave it, as openat2(RESOLVE_IN_ROOT)).
The snapshot is prepared `trusted`: no existing inode is ever modified in place (files are
replaced by a temp file renamed over them; metadata is only set on inodes this op created
or on directories), so the native snapshotter may build it from hardlinks of the parent.
The result is committed only when every action succeeded; otherwise it is discarded."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import threading
from pathlib import Path

from llb.errors import LLBError, is_no_space
from llb.fsutil import (Creds, contains_wildcards, creds as current_creds, read_xattrs,
                        remove_tree, set_times, write_xattrs)
from llb.ops import Copy, FileAction, FileOp, Mkdir, Mkfile, Rm
from llb.paths import clean
from llb.validate import MAX_ID
from llb.snapshot import Ref
from llb.snapshot.errors import PathEscapeError, SnapshotError
from llb.snapshot.paths import resolve_in_root
from llb.solver.errors import SolveCancelledError, SolveError
from llb.solver.ops import file_copy
from llb.solver.ops.context import OpContext
from llb.solver.ops.file_copy import Owner, in_root, mkdir_all
from llb.solver.ops.file_errors import CopySourceNotFoundError, FileActionError, OwnerError
from llb.solver.patterns import resolve_wildcards
from llb.solver.names import action_name, file_name as name

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from typing import Callable

__all__ = ["run", "name", "action_name", "FileActionError", "CopySourceNotFoundError",
           "OwnerError"]


# One FileOp at a time per process: the scheduler takes TURN before the op starts (see
# llb.solver.ops.turn). A FileOp is file-system metadata work driven from Python (a few
# syscalls per file, the GIL taken back after each): run side by side on other scheduler
# threads they pass the GIL back and forth on every syscall and contend for the same
# directories' and block groups' locks. Measured on 2 CPUs, cold merge-files 100 (100 FileOps
# of 100 mkfiles): 1.09 s wall and 1.27 s CPU one at a time, 1.38 s and 1.94 s four at a
# time. Execs, pulls and local sources still run in parallel; a copy action's own tree copy
# keeps its worker threads.
TURN = threading.Lock()


def run(ctx: OpContext, op: FileOp, inputs: list) -> list:
    """Apply op's actions to a mutable snapshot of inputs[0]; one output, the new tree."""
    base = inputs[0] if inputs else None
    if base is not None:
        removed = _removals(op.actions)
        if removed is not None:
            if ctx.cancelled.is_set():
                raise SolveCancelledError(f"{name(op)}: cancelled", vertex=ctx.vertex)
            try:
                ref = ctx.store.delete_paths(base, removed)
            except OSError as e:  # (a name too long, ...): the general way says it as ever
                if is_no_space(e):
                    raise
                ref = None
            if ref is not None:
                return [ref]
    mutable = ctx.store.prepare(base, trusted=True)
    committed = False
    try:
        with contextlib.ExitStack() as stack:
            root = os.path.abspath(str(stack.enter_context(mutable.mount())))
            views: dict[int, str] = {}
            parents: dict[str, str] = {}  # see _mkfile_target
            dirs = _Dirs()  # see _new_files
            actions = op.actions
            i, n = 0, len(actions)
            while i < n:
                if ctx.cancelled.is_set():
                    raise SolveCancelledError(f"{name(op)}: cancelled", vertex=ctx.vertex)
                action = actions[i]
                if type(action) is Mkfile and parents:
                    done = _new_files(root, actions, i, parents, dirs, ctx.cancelled.is_set)
                    if done:
                        i += done
                        continue
                elif not isinstance(action, (Mkfile, Rm)):
                    parents.clear()
                    dirs.plain.clear()
                _run_action(ctx, stack, root, views, inputs, action, parents)
                i += 1
        ref = mutable.commit()
        committed = True
        return [ref]
    finally:
        if not committed:
            mutable.discard()


def _removals(actions: tuple[FileAction, ...]) -> list[str] | None:
    """The paths (clean, relative) of an op made only of rm actions without wildcards,
    which the store removes without preparing a tree (Store.delete_paths); None for any
    other op, and for an rm of / (the general way refuses it)."""
    if not actions:
        return None
    paths = []
    for a in actions:
        if not isinstance(a, Rm):
            return None
        path = a.path
        if a.allow_wildcard and contains_wildcards(path):
            return None
        p = path if path[:1] == "/" else "/" + path
        if "//" in p or "/." in p or p[-1:] == "/":  # (else clean already: the usual case)
            p = clean("/" + path)
        if p == "/" or "\x00" in p:
            return None
        paths.append(p[1:])
    return paths


def _run_action(ctx: OpContext, stack: contextlib.ExitStack[bool | None], root: str,
                views: dict[int, str], inputs: list[Ref | None], action: FileAction,
                parents: dict[str, str] | None = None) -> None:
    src_root = None
    try:
        if isinstance(action, Mkdir):
            _mkdir(root, action)
        elif isinstance(action, Mkfile):
            _mkfile(root, action, parents)
        elif isinstance(action, Rm):
            _rm(root, action, parents)
        elif isinstance(action, Copy):
            src_root = _source(ctx, stack, views, inputs, action.source)
            owner = _owner(root, action.owner) if action.owner else None
            file_copy.copy(root, src_root, action, owner, ctx.cancelled)
        else:
            raise FileActionError(f"unknown file action {type(action).__name__}")
    except LLBError as e:
        e.vertex = ctx.vertex
        if isinstance(e, SolveError):
            e.name = ctx.name
        e.message = f"{action_name(action)}: {e.message}"
        raise
    except OSError as e:
        if is_no_space(e):  # a full disk is no file-action problem: the solver names it
            raise
        path = _user_path(e.filename, root, src_root)
        detail = e.strerror or str(e)
        raise FileActionError(f"{action_name(action)}: {detail}" + (f": {path}" if path else ""),
                              vertex=ctx.vertex, path=path, name=ctx.name) from None


def _user_path(filename: object, root: str, src_root: str | None) -> str | None:
    if not isinstance(filename, str):
        return None
    for r in (root, src_root):
        if r and (filename == r or filename.startswith(r + "/")):
            return in_root(r, filename)
    return filename


def _source(ctx: OpContext, stack: contextlib.ExitStack[bool | None], views: dict[int, str],
            inputs: list[Ref | None], index: int) -> str:
    """The read-only tree of copy source `index`, mounted once per op."""
    if index not in views:
        if not 0 <= index < len(inputs):
            raise FileActionError(f"copy source input {index} does not exist")
        ref = inputs[index]
        path: str | Path
        if ref is None:  # scratch: an empty tree
            import tempfile  # rare: not worth a start-up import

            path = stack.enter_context(tempfile.TemporaryDirectory(prefix="llb-scratch-"))
        else:
            path = stack.enter_context(ctx.store.view(ref))
        views[index] = os.path.abspath(path)
    return views[index]


def _resolve(root: str, path: str, follow: bool = True) -> str:
    try:
        return str(resolve_in_root(root, clean("/" + path), follow_final=follow))
    except PathEscapeError:
        raise
    except SnapshotError as e:
        raise FileActionError(e.message, path=path) from None


# ------------------------------------------------------------------------------ owners


def _owner(root: str, owner: str) -> Owner:
    """uid, gid for an owner option: "uid[:gid]" numbers or "user[:group]" names looked up
    in the tree's own /etc/passwd and /etc/group; a lone user gives its primary group (a
    lone uid gives gid = uid, as BuildKit does)."""
    user, _, group = owner.partition(":")
    uid = gid = 0
    if user:
        if _is_id(user):
            uid = gid = int(user)
        else:
            entry = _lookup(root, "/etc/passwd", user)
            if entry is None or len(entry) < 4 or not (_is_id(entry[2]) and _is_id(entry[3])):
                raise OwnerError(f"unknown user {user!r} (not in the state's /etc/passwd)",
                                 path="/etc/passwd")
            uid, gid = int(entry[2]), int(entry[3])
    if group:
        if _is_id(group):
            gid = int(group)
        else:
            entry = _lookup(root, "/etc/group", group)
            if entry is None or len(entry) < 3 or not _is_id(entry[2]):
                raise OwnerError(f"unknown group {group!r} (not in the state's /etc/group)",
                                 path="/etc/group")
            gid = int(entry[2])
    if uid > MAX_ID or gid > MAX_ID:
        raise OwnerError(f"owner {owner!r}: ids {uid}:{gid} out of range (0 to {MAX_ID})")
    return uid, gid


def _is_id(text: str) -> bool:
    """A number in ASCII digits (a name like "²" is no id)."""
    return text.isascii() and text.isdigit()


def _lookup(root: str, db: str, key: str) -> list[str] | None:
    try:
        with open(_resolve(root, db), encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if fields and fields[0] == key and not line.startswith("#"):
                    return fields
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError, FileActionError):
        return None
    return None


# ------------------------------------------------------------------------------ actions


def _times(created: int) -> int | None:
    """The time (ns) an action gives what it creates; None: leave the time alone."""
    return created if created != -1 else None


def _mkdir(root: str, a: Mkdir) -> None:
    """An existing path (directory or not, parents or not) changes nothing (docs/design.md;
    BuildKit's MkdirAll fails on an existing non-directory). Created directories, parents
    included, get the leaf's mode, owner and times."""
    p = _resolve(root, a.path)
    mode = a.mode & 0o777
    owner = _owner(root, a.owner) if a.owner else None
    times = _times(a.created)
    if a.parents:
        if os.path.lexists(p):
            return
        created: list[str] = []
        mkdir_all(root, p, mode, owner, created)
        if times is not None:
            for d in reversed(created):
                set_times(d, times)
        return
    try:
        os.mkdir(p, 0o700)
    except FileExistsError:
        return
    except FileNotFoundError:
        raise FileActionError(f"parent directory of {in_root(root, p)} does not exist "
                              "(use parents=True)", path=in_root(root, p)) from None
    os.chmod(p, mode)
    if owner is not None:
        os.chown(p, *owner)
    if times is not None:
        set_times(p, times)


def _mkfile_parent(root: str, a: Mkfile, parents: dict[str, str] | None) -> str | None:
    """The path a.path names, by way of its parent directory resolved once for a run of
    mkfiles (they only create or replace regular files, so a resolved directory stays valid
    until another kind of action runs); None when the full walk is needed (a parent that is
    not a directory: the slow path says why)."""
    if parents is None:
        return None
    path = a.path
    if path[:1] != "/" or path[-1:] == "/" or "//" in path or "/." in path:
        path = clean("/" + path)  # (a definition's paths are clean: this is seldom needed)
    d, _, base = path.rpartition("/")
    if not base:
        return None
    parent = parents.get(d)
    if parent is None:
        try:
            parent = _resolve(root, d or "/")
        except FileActionError:
            return None
        if not os.path.isdir(parent):
            return None
        parents[d] = parent
    return parent + "/" + base if parent[-1:] != "/" else parent + base


def _mkfile_target(root: str, a: Mkfile, parents: dict[str, str] | None
                   ) -> tuple[str, os.stat_result | None] | None:
    """The path of a.path (see _mkfile_parent) and its lstat; None when the full walk is
    needed (also a final symlink)."""
    p = _mkfile_parent(root, a, parents)
    if p is None:
        return None
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        return p, None
    if stat.S_ISLNK(st.st_mode):
        return None
    return p, st


_O_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _mkfile(root: str, a: Mkfile, parents: dict[str, str] | None = None) -> None:
    """Create the file, or replace an existing one's content keeping its mode and owner
    (a symlink is followed inside the tree, as BuildKit's os.WriteFile does)."""
    owner = _owner(root, a.owner) if a.owner else None
    new = _mkfile_parent(root, a, parents)
    if new is not None:
        # the common case, a new name: created at once (O_EXCL); a name that is there
        # already (a file, a directory, a symlink) takes the way below, which looks at it
        try:
            fd = os.open(new, _O_NEW, a.mode & 0o777)
        except FileExistsError:
            pass
        else:
            _write_new(fd, new, new, a, a.mode & 0o777, owner or (0, 0), {})
            return
    fast = _mkfile_target(root, a, parents)
    if fast is not None:
        p, st = fast
        parent = os.path.dirname(p)
    else:
        p = _resolve(root, a.path)
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            st = None
        parent = os.path.dirname(p)
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise FileActionError(f"{in_root(root, p)} is a directory", path=in_root(root, p))
    if fast is None and not os.path.isdir(parent):
        raise FileActionError(f"parent directory of {in_root(root, p)} does not exist",
                              path=in_root(root, p))
    if st is not None and stat.S_ISREG(st.st_mode):
        mode = stat.S_IMODE(st.st_mode)
        uid, gid = owner if owner is not None else (st.st_uid, st.st_gid)
        keep = {k: v for k, v in read_xattrs(p).items() if k != "security.capability"}
    else:
        mode = a.mode & 0o777
        uid, gid = owner if owner is not None else (0, 0)
        keep = {}
    if st is None:  # a new name: write it in place
        tmp = p
    else:  # never write an existing inode: a temp file renamed over it
        tmp = os.path.join(parent, f".{os.path.basename(p)}.llb-{os.urandom(4).hex()}")
    fd = os.open(tmp, _O_NEW, mode & 0o777)
    _write_new(fd, tmp, p, a, mode, (uid, gid), keep)


class _Dirs:
    """What the mkfiles of a run know of the directories they write in (see _new_files):
    whether each (a resolved path) is plain, and this process's Creds, read once."""

    __slots__ = ("plain", "creds")

    def __init__(self) -> None:
        self.plain: dict[str, bool] = {}
        self.creds: Creds | None = None


def _new_files(root: str, actions: tuple[FileAction, ...], start: int,
               parents: dict[str, str], dirs: _Dirs, cancelled: Callable[[], bool]) -> int:
    """Create the new files of the plain mkfiles from actions[start] on (no owner, no time,
    a clean path in a directory an earlier action of the run resolved, a name not there
    yet) in one loop: what _mkfile does for each, less its calls and its fstat, as the
    owner and mode a new file gets there are known (_plain_dir). Returns how many it did;
    the action it stopped at (another kind, or one it cannot do so) takes the general way,
    which also says what went wrong where a call failed here (the file is removed first)."""
    creds = dirs.creds
    if creds is None:
        creds = dirs.creds = current_creds()
    if creds.uid or creds.gid:
        return 0  # a new file is not root's: the general way gives it its owner
    umask = creds.umask
    plain = dirs.plain
    i, n = start, len(actions)
    while i < n:
        a = actions[i]
        if type(a) is not Mkfile or a.owner or a.created != -1:
            break
        if not (i - start) & 63 and i > start and cancelled():
            break  # (looked at every 64 files: the caller stops the op)
        path = a.path
        if path[:1] != "/" or path[-1:] == "/" or "//" in path or "/." in path:
            break
        d, _, base = path.rpartition("/")
        parent = parents.get(d)
        if parent is None or not base:
            break
        ok = plain.get(parent)
        if ok is None:
            ok = plain[parent] = _plain_dir(parent, creds)
        mode = a.mode & 0o777
        if not ok or mode & umask:
            break
        p = parent + "/" + base if parent[-1:] != "/" else parent + base
        try:
            fd = os.open(p, _O_NEW, mode)
        except OSError:
            break  # a name there already (the general way replaces it), or it says why
        try:
            try:
                _write_all(fd, a.data)
            finally:
                os.close(fd)
        except BaseException as e:
            with contextlib.suppress(OSError):
                os.unlink(p)
            if isinstance(e, OSError):
                break
            raise
        i += 1
    return i - start


def _write_all(fd: int, data: bytes) -> None:
    """Write all of data to fd (one write, the usual case; the rest after a short one)."""
    done = os.write(fd, data) if data else 0
    if done < len(data):
        view = memoryview(data)[done:]
        while view:
            view = view[os.write(fd, view):]


def _plain_dir(path: str, creds: Creds) -> bool:
    """Whether a file created in the directory at path gets exactly creds' owner and the
    mode it is created with less the umask: the directory is not set-group-ID (or has our
    group) and has no default ACL (which would stand in for the umask)."""
    try:
        st = os.stat(path)
        if st.st_mode & stat.S_ISGID and st.st_gid != creds.gid:
            return False
        os.getxattr(path, _ACL_DEFAULT)
    except OSError as e:
        return e.errno in (errno.ENODATA, errno.EOPNOTSUPP)  # (no such xattr, or no ACLs)
    return False  # a default ACL


_ACL_DEFAULT = "system.posix_acl_default"


def _write_new(fd: int, tmp: str, p: str, a: Mkfile, mode: int, owner: tuple[int, int],
               keep: dict[str, bytes]) -> None:
    """Fill the file just created as tmp (open as fd, which this closes) with a.data, give
    it owner, mode, the xattrs `keep` and a's time, and rename it to p when that is another
    name; on any failure tmp is removed."""
    # created with its final mode: owner and mode are changed only when the new inode does not
    # already have them (each change is one more journalled inode update per file)
    try:
        try:
            _write_all(fd, a.data)
            have = os.fstat(fd)
            chowned = (have.st_uid, have.st_gid) != owner
            if chowned:
                os.fchown(fd, *owner)
            if stat.S_IMODE(have.st_mode) != mode or (chowned and mode & 0o6000):
                os.fchmod(fd, mode)
        finally:
            os.close(fd)
        if keep:
            write_xattrs(tmp, keep)
        if a.created != -1:
            set_times(tmp, a.created)
        if tmp != p:
            os.rename(tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _rm(root: str, a: Rm, parents: dict[str, str] | None = None) -> None:
    """Remove recursively (a final symlink itself, never its target). A missing path is
    fine; a wildcard matching nothing fails unless allow_not_found. parents: directories
    resolved by earlier actions of a run (see _mkfile_parent), kept valid here."""
    if a.allow_wildcard and contains_wildcards(a.path):
        if parents is not None:
            parents.clear()
        matches = resolve_wildcards(root, a.path, False)
        if not matches and not a.allow_not_found:
            raise FileActionError(f"no match for {a.path}", path=a.path)
        for m in matches:
            _rm_path(root, m)
        return
    _rm_path(root, a.path, parents)


def _rm_path(root: str, path: str, parents: dict[str, str] | None = None) -> None:
    p = clean("/" + path)
    if p == "/":
        raise FileActionError("refusing to remove /", path=path)
    d, base = p.rsplit("/", 1)
    parent = parents.get(d) if parents is not None else None
    if parent is None:
        try:
            parent = str(resolve_in_root(root, d or "/"))
        except PathEscapeError:
            raise
        except SnapshotError:
            return  # a parent is not a directory: nothing there to remove
        if parents is not None and os.path.isdir(parent):
            parents[d] = parent  # (resolved: no symlink in it, so isdir follows none)
    target = os.path.join(parent, base)
    try:
        st = os.lstat(target)
    except (FileNotFoundError, NotADirectoryError):
        return
    if not stat.S_ISDIR(st.st_mode):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(target)
        if parents and stat.S_ISLNK(st.st_mode):
            parents.clear()  # it may have been the way to a directory resolved before
        return
    remove_tree(target)
    if parents:  # directories resolved below it are gone
        for k in [k for k, v in parents.items() if v == target or v.startswith(target + "/")]:
            del parents[k]
