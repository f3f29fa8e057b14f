"""The native snapshotter: every snapshot keeps its recorded diff laid out in `layer/`
(hardlinks into its tree) and, usually, its full tree in `tree/`; a snapshot without a
parent is all additions, so its `layer/` is its tree.

A mutable child a process may write is a full copy of its parent. A trusted child (its
writer replaces files, never edits an inode in place) instead takes over the parent's
`tree/` by a rename when no one is reading it, and is diffed at commit against a map of
what that tree held: a FileOp chain costs what each step changes, not the tree's size. A
parent whose tree was taken rebuilds it from its layer chain if it is ever needed again.
Readers of a tree hold a shared flock on `<snapshot>/tree.lock`; taking a tree needs it
exclusively (without waiting), so a tree is never taken from under a reader, in any process.

An untrusted child (an exec's rootfs) takes its parent's tree too when that tree is
private: committed from an untrusted child (its own copy, or a private tree it took) and
never handed out since, by any process (no view, no trusted child), so that no other
snapshot holds its inodes but the parent's own layer; every name sharing an inode with
that layer is given a copy of its own first. The mark is an xattr on
`<snapshot>/tree.lock`, set at commit and removed by whoever shares the tree (before
taking its lock) or takes it (holding it exclusively): no file is created or deleted for
it. Such a child's commit is diffed against records of the tree as taken (its map, each
file's ctime and metadata): a file whose ctime did not move is untouched; one whose ctime
moved is compared by metadata as the copy differ does (mode, owner, size, mtime, xattrs),
except that a file with a whole-second mtime, whose bytes that differ would compare,
counts as modified: its old bytes are gone. An exec chain then costs what each step
changes instead of a copy of the whole tree (hundreds of new inodes per exec, 20 us each
on ext4 without a journal, 300 us and more after many deletions)."""

from __future__ import annotations

import fcntl
import os
import stat
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager

from llb.fsutil import copy_entry, copy_tree, read_xattrs
from llb.snapshot.driver import Draft, Driver, make_root
from llb.snapshot.index import Index
from llb.snapshot.layers import Change, change_key

# What only writing a snapshot needs (differ, treemap, upper) is imported by the methods
# that write, as in the store and the overlayfs driver (snapshot/driver.py), and typing
# not at all: a cached solve on a native root loaded them (~16M instructions, typing 13M)
TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Iterator

    from llb.snapshot.treemap import TreeMap

    _Records = tuple[TreeMap, dict[int, tuple]]  # a tree's map, and _file_record by inode


_MAPS_KEPT = 8  # tree maps remembered per process (the tips of FileOp chains)


class NativeDriver(Driver):
    kind = "native"
    layer_dirname = "layer"

    def __init__(self, index: Index):
        super().__init__(index)
        self._maps: OrderedDict[str, TreeMap] = OrderedDict()
        self._base_maps: dict[str, TreeMap] = {}  # mutable id -> map of the tree it took
        self._fresh: dict[str, dict[int, int]] = {}  # mutable id -> its copies' ctimes
        self._taken: dict[str, _Records] = {}  # untrusted mutable -> its tree as taken
        # snapshots with a private tree -> that tree's records when known (a taken tree's)
        self._private: OrderedDict[str, _Records | None] = OrderedDict()
        self._maps_lock = threading.Lock()

    def init_mutable(self, m: Draft) -> None:
        m.dir.mkdir()
        tree = m.dir / "tree"
        if m.parent_id is None:
            make_root(tree)
            return
        if m.trusted:
            self._shared(m.parent_id)  # linked or taken: its inodes go to a trusted tree
            if self._take_tree(m.parent_id, tree, m.id):
                return
        elif self._take_private(m.parent_id, tree, m.id):
            return
        with self._reading(m.parent_id) as ptree:
            if m.trusted:
                copy_tree(ptree, tree, link=True)
            else:
                fresh: dict[int, int] = {}
                copy_tree(ptree, tree, ctimes=fresh)
                self._fresh[m.id] = fresh

    def mount_mutable(self, m: Draft) -> Path:
        return m.dir / "tree"

    def unmount_mutable(self, m: Draft) -> None:
        pass

    def commit_mutable(self, m: Draft) -> list[Change]:
        from llb.snapshot.differ import tree_changes  # a writer's (see above)
        from llb.snapshot.treemap import map_changes
        from llb.snapshot.upper import write_layer

        tree = m.dir / "tree"
        base = self._base_maps.pop(m.id, None)
        taken = self._taken.pop(m.id, None)
        records = None
        if base is not None:
            changes, new = map_changes(tree, base)
            self._remember(m.id, new)
        elif taken is not None:
            changes, records = _taken_changes(tree, *taken)
        elif m.parent_id is None:
            # everything is an addition: the tree is its own layer (kept as `layer/` only,
            # so it is never taken; a trusted child hardlinks it instead)
            changes = tree_changes(tree, None, same_fs=True)
            os.rename(tree, m.dir / "layer")
            return changes
        else:
            with self._reading(m.parent_id) as ptree:
                changes = tree_changes(tree, ptree, same_fs=True,
                                       fresh=self._fresh.pop(m.id, None))
        write_layer(tree, m.dir / "layer", changes)
        if not m.trusted and _mark_private(m.dir / "tree.lock"):
            with self._maps_lock:  # its tree: our copies, and its changes (also in layer/)
                self._private[m.id] = records
                while len(self._private) > _MAPS_KEPT:
                    self._private.popitem(last=False)
        return changes

    def discard_mutable(self, m: Draft) -> None:
        self._base_maps.pop(m.id, None)
        self._fresh.pop(m.id, None)
        self._taken.pop(m.id, None)

    @contextmanager
    def view(self, sid: str) -> Iterator[str]:
        self._shared(sid)  # a reader may link what it sees into another snapshot
        with self._reading(sid) as tree:
            yield tree

    # ---- trees

    @contextmanager
    def _reading(self, sid: str) -> Iterator[str]:
        """sid's full tree, protected from being taken while we read it."""
        fd = self._lockfd(sid)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            yield self.ensure_tree(sid)
        finally:
            os.close(fd)

    def _lockfd(self, sid: str) -> int:
        return os.open(os.path.join(self.index.snapshots_dir, sid, "tree.lock"),
                       os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def _take_tree(self, sid: str, dest: Path, mid: str) -> bool:
        """Move sid's tree to dest if no one reads it; remember what it held."""
        tree = self.index.snapshot_dir(sid) / "tree"
        if not tree.is_dir():
            return False
        fd = self._lockfd(sid)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            if not tree.is_dir():
                return False
            with self._maps_lock:
                base = self._maps.pop(sid, None)
            if base is None:
                from llb.snapshot.treemap import build_map  # a writer's (see above)

                base = build_map(tree)
            os.rename(tree, dest)
            self._base_maps[mid] = base
            return True
        finally:
            os.close(fd)

    def _shared(self, sid: str) -> None:
        """sid's tree is no longer private, for every process (see the module docstring):
        done before its reader takes the lock, so a taker holding it sees the mark gone."""
        with self._maps_lock:
            self._private.pop(sid, None)
        try:
            os.removexattr(os.path.join(self.index.snapshots_dir, sid, "tree.lock"), _PRIVATE)
        except OSError:
            pass  # no lock file, or not marked

    def _take_private(self, sid: str, dest: Path, mid: str) -> bool:
        """Move sid's private tree to dest if no one reads it, give the entries its layer
        shares new inodes, and remember the tree as taken (its map and file records)."""
        with self._maps_lock:
            records = self._private.pop(sid, None)  # known when we committed it
        tree = self.index.snapshot_dir(sid) / "tree"
        try:
            fd = os.open(self.index.snapshot_dir(sid) / "tree.lock", os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            return False  # never marked
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                os.getxattr(fd, _PRIVATE)
            except OSError:  # being read, or shared since
                return False
            if not tree.is_dir():
                return False
            os.removexattr(fd, _PRIVATE)  # the tree leaves: the next one is built, shared
            os.rename(tree, dest)
        finally:
            os.close(fd)
        files: dict[int, tuple] | None = None
        if records is None:
            from llb.snapshot.treemap import build_map  # a writer's (see above)

            tree_map = build_map(dest)
        else:
            tree_map, files = records
        unshared = _unshare(dest, tree_map, self.index.changes(sid))
        self._taken[mid] = _with_unshared(dest, tree_map, files, unshared)
        return True

    def _remember(self, sid: str, tree_map: TreeMap) -> None:
        with self._maps_lock:
            self._maps[sid] = tree_map
            while len(self._maps) > _MAPS_KEPT:
                self._maps.popitem(last=False)

    def ensure_tree(self, sid: str) -> str:
        tree = os.path.join(self.index.snapshots_dir, sid, "tree")
        if os.path.isdir(tree):
            return tree  # (before the row: a tree already there needs no lookup)
        row = self.index.row(sid)
        if row.kind == "layer" and row.parent is None and not os.path.exists(tree):
            return os.fspath(self.layer_root(sid))  # a parentless layer's tree: its content
        return super().ensure_tree(sid)


_PRIVATE = "user.llb.private"  # on <snapshot>/tree.lock: its tree is private (any process)


def _mark_private(lock: Path) -> bool:
    """Create a committing snapshot's tree.lock marked private; False where the
    filesystem has no user xattrs (its tree is then never taken)."""
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        os.setxattr(fd, _PRIVATE, b"1")
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
_RACY_NS = 20_000_000  # as snapshot.treemap: a ctime this recent may not move on a change


def _unshare(tree: Path, tree_map: TreeMap, changes: list[Change]) -> list[str]:
    """Give a copy of its own to every path of the tree (found in its map) whose inode
    the layer holds too (added or modified entries are hardlinked into `layer/`; another
    name of the tree may share one: `ln old new` adds only `new`), hardlinks among them
    kept; the directories they are in keep their times. Returns the paths replaced."""
    shared: set[int] = set()
    for ch in changes:
        if ch.kind != "delete":
            st = os.lstat(os.path.join(tree, ch.path))
            if not stat.S_ISDIR(st.st_mode):
                shared.add(st.st_ino)
    done: list[str] = []
    copies: dict[tuple[int, int], str] = {}
    times: dict[str, tuple[int, int]] = {}
    for rel in [f"{d}/{n}" if d else n for d, rec in tree_map.items()
                for n, ino in rec.names.items() if ino in shared]:
        p = os.path.join(tree, rel)
        st = os.lstat(p)
        d = os.path.dirname(p)
        if d not in times:
            dst = os.lstat(d)
            times[d] = (dst.st_atime_ns, dst.st_mtime_ns)
        tmp = os.path.join(d, f".llb-unshare-{os.urandom(16).hex()}")
        key = (st.st_dev, st.st_ino)
        if key in copies:
            os.link(copies[key], tmp)
        else:
            copy_entry(p, tmp, st)
        os.rename(tmp, p)
        copies.setdefault(key, p)
        done.append(rel)
    for d, ns in times.items():
        os.utime(d, ns=ns)
    return done


def _file_record(path: str, st: os.stat_result) -> tuple:
    """What tells a changed file from an untouched one: ctime first (unknown when too
    recent to trust), then metadata."""
    ctime = -1 if time.time_ns() - st.st_ctime_ns < _RACY_NS else st.st_ctime_ns
    return (ctime, st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns,
            tuple(sorted(read_xattrs(path).items())))


def _with_unshared(tree: Path, tree_map: TreeMap, files: dict[int, tuple] | None,
                   unshared: list[str]) -> _Records:
    """A taken tree's records once _unshare replaced some files: their new inodes in the
    map (their directories rescanned at the next commit) and recorded; every file
    recorded when the records did not come from the parent's commit (files None)."""
    new: list[tuple[int, str]] = []
    for rel in unshared:
        ino = os.lstat(os.path.join(tree, rel)).st_ino
        d, name = os.path.split(rel)
        rec = tree_map[d]
        tree_map[d] = rec._replace(ident=(rec.ident[0], -1), names={**rec.names, name: ino})
        new.append((ino, rel))
    if files is None:
        return tree_map, _file_records(tree, tree_map)
    for ino, rel in new:
        p = os.path.join(tree, rel)
        files[ino] = _file_record(p, os.lstat(p))
    return tree_map, files


def _file_records(tree: Path, tree_map: TreeMap) -> dict[int, tuple]:
    """Each non-directory's record (_file_record), by inode."""
    from llb.snapshot.treemap import DIR

    files: dict[int, tuple] = {}
    for rel, rec in tree_map.items():
        d = os.path.join(tree, rel)
        for name, ino in rec.names.items():
            if ino != DIR and ino not in files:
                p = os.path.join(d, name)
                files[ino] = _file_record(p, os.lstat(p))
    return files


def _taken_changes(tree: Path, base: TreeMap, files: dict[int, tuple]
                   ) -> tuple[list[Change], _Records]:
    """Changes of a taken tree: those of its directories (map_changes: entries added,
    removed or replaced, directory metadata), plus every file still at its name with its
    inode that was changed in place (see the module docstring); and the tree's records
    now, for a child that takes it next."""
    from llb.snapshot.treemap import DIR, map_changes

    changes, new = map_changes(tree, base)
    seen = {c.path for c in changes}
    now: dict[int, tuple] = {}
    for rel, rec in new.items():
        d = os.path.join(tree, rel)
        for name, ino in rec.names.items():
            if ino == DIR:
                continue
            p = os.path.join(d, name)
            st = os.lstat(p)
            was = files.get(ino)
            if was is not None and was[0] == st.st_ctime_ns:
                now[ino] = was  # untouched
                continue
            now[ino] = rec_now = _file_record(p, st)
            r = f"{rel}/{name}" if rel else name
            if r not in seen and (was is None or was[1:] != rec_now[1:] or (
                    stat.S_ISREG(st.st_mode) and st.st_size
                    and st.st_mtime_ns % 1_000_000_000 == 0)):
                changes.append(Change(r, "modify"))
    changes.sort(key=change_key)
    return changes, (new, now)
