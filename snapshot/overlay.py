"""The overlayfs snapshotter: a layer snapshot stores only its upperdir (`fs/`, kernel
whiteouts and opaque markers included); its tree is an overlay mount of its chain. Merge
and diff results are full trees (`tree/`). Chains deeper than MAX_LOWERS are flattened:
an ancestor gets a materialised `flat/` tree (its chain applied by the merge engine) that
later mounts use as their bottom layer.

A trusted mutable (its writer replaces files, never edits an inode in place: FileOp) gets no
mount: it works on a plain tree, hardlinks of its parent's files. At commit its diff is read
against an in-memory map of that tree (snapshot.treemap), its `fs/` upperdir is written from
the diff (snapshot.upper) and the tree is kept as the snapshot's `tip/`, which the next
trusted child takes over by a rename: a FileOp chain costs what each step changes. A `tip/`
is never a mount's layer; a view uses it (no mount, no flattening) under a shared flock on
the tip directory, which a taker needs exclusively without waiting, so a tip is never
taken from under a reader, in any process. A snapshot whose tip was taken has a new one
built from its layer chain if a trusted child needs it again (when small)."""

from __future__ import annotations

import fcntl
import os
import threading
from collections import OrderedDict
from contextlib import contextmanager

from llb.fsutil import copy_meta, copy_tree, remove_tree
from llb.snapshot.driver import Draft, Driver, make_root, publish_cache
from llb.snapshot.index import Index
from llb.snapshot.layers import Change
from llb.snapshot.mount import mount_overlay, unmount

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Iterator
    from llb.snapshot.treemap import TreeMap

MAX_LOWERS = 64  # layers per mount before flattening (well inside one page of options)
LOOKUP_BUDGET = 4096  # upper entries x layers below which a commit looks paths up itself
BUILD_BUDGET = 512  # layer entries up to which a trusted child builds a tree without a tip
STEP_ENTRIES = 300  # entries linked into a built tree in the time one mounted step costs
_MAPS_KEPT = 8  # tip maps remembered per process (the tips of FileOp chains)


def _scratch(m: Draft) -> Path:
    """Where a mounted mutable's overlay work directories live, and its mount point goes
    at commit: beside its directory in the session, not inside it, so that a commit
    publishes the directory without deleting anything first (deletions are slow on the hot
    path: ext4 without a journal discards a freed block at once and, for a minute or more,
    skips freed inodes one by one in every later file creation); the session's removal,
    when the store closes, takes them."""
    return m.dir.with_name(m.id + ".scratch")


def _few_entries(root: Path, limit: int) -> bool:
    """True when the tree at root has at most `limit` entries (stops counting early)."""
    return _count_upto(root, limit) <= limit


def _count_upto(root: str | os.PathLike[str], limit: int) -> int:
    """Entries of the tree at root, counted up to limit + 1."""
    n = 0
    stack = [os.fspath(root)]
    while stack:
        with os.scandir(stack.pop()) as it:
            for e in it:
                n += 1
                if n > limit:
                    return n
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
    return n


class OverlayDriver(Driver):
    kind = "overlayfs"
    layer_dirname = "fs"
    whiteouts = True

    def __init__(self, index: Index):
        super().__init__(index)
        self._cache: dict[str, list[str]] = {}
        self._maps: OrderedDict[str, TreeMap] = OrderedDict()  # snapshot -> map of its tip
        self._base_maps: dict[str, TreeMap] = {}  # trusted mutable -> map of its tree
        self._streaks: dict[str, int] = {}  # snapshot -> trusted steps mounted in a row to it
        self._maps_lock = threading.Lock()

    def _rel(self, path: str | os.PathLike[str]) -> str:
        return os.path.relpath(path, self.index.root)

    # ---- mutables

    def init_mutable(self, m: Draft) -> None:
        m.dir.mkdir()
        if m.parent_id is not None and m.trusted:
            base = self._tree_for(m.parent_id, m.dir / "tree")
            if base is not None:
                self._base_maps[m.id] = base
                return
        make_root(m.dir / "fs")
        if m.parent_id is not None:
            # overlay shows a merged directory with its upper's attributes: the root must
            # start as the parent's root (mode, owner, xattrs, times)
            top = os.path.join(self.index.root, self.lowers(m.parent_id)[0])
            copy_meta(top, str(m.dir / "fs"))
            (m.dir / "mnt").mkdir()
            os.mkdir(_scratch(m))

    def mount_mutable(self, m: Draft) -> Path:
        if m.id in self._base_maps:
            return m.dir / "tree"
        if m.parent_id is None:
            return m.dir / "fs"
        lowers = self.lowers(m.parent_id)
        if m.underlay is not None:  # shown below the tree; the commit diffs against lowers
            lowers = lowers + [str(m.underlay)]
        # a fresh work directory per mount: the kernel refuses one a volatile mount used
        work = _scratch(m) / f"work-{len(os.listdir(_scratch(m)))}"
        os.mkdir(work)
        mount_overlay(m.dir / "mnt", self.index.root, lowers,
                      self._rel(m.dir / "fs"), self._rel(work))
        return m.dir / "mnt"

    def unmount_mutable(self, m: Draft) -> None:
        if m.parent_id is not None and m.id not in self._base_maps:
            # EBUSY if a process still writes there; a trusted writer is our own code, its
            # writes are all in the upperdir already: detach without waiting for RCU
            unmount(m.dir / "mnt", lazy=m.trusted)

    def commit_mutable(self, m: Draft) -> list[Change]:
        # a writer's modules (see snapshot/driver.py)
        from llb.snapshot.differ import LayeredLower, NeedView, PathLower, overlay_changes
        from llb.snapshot.treemap import map_changes
        from llb.snapshot.upper import write_layer

        base = self._base_maps.pop(m.id, None)
        if base is not None:
            tree = m.dir / "tree"
            mapped, new = map_changes(tree, base)
            write_layer(tree, m.dir / "fs", mapped, whiteouts=True)
            os.rename(tree, m.dir / "tip")
            with self._maps_lock:
                self._maps[m.id] = new
                while len(self._maps) > _MAPS_KEPT:
                    self._maps.popitem(last=False)
            return mapped
        if m.trusted and m.parent_id is not None:
            self._streaks[m.id] = self._streaks.pop(m.parent_id, 0) + 1
        upper = m.dir / "fs"
        changes: list[Change] | None
        if m.parent_id is None:
            changes = overlay_changes(upper, None)
        else:
            changes = None
            dirs = self.lowers(m.parent_id)
            if _few_entries(upper, LOOKUP_BUDGET // len(dirs)):
                try:  # look paths up in the layers: no mount for a small change
                    changes = overlay_changes(
                        upper, LayeredLower([os.path.join(self.index.root, d) for d in dirs]))
                except NeedView:
                    changes = None
            if changes is None:
                with self.view(m.parent_id) as lower:
                    changes = overlay_changes(upper, PathLower(lower))
            os.rename(m.dir / "mnt", _scratch(m) / "mnt")  # moved, not deleted: see _scratch
        return changes

    def discard_mutable(self, m: Draft) -> None:
        self._base_maps.pop(m.id, None)

    def _tree_for(self, sid: str, dest: Path) -> TreeMap | None:
        """Put at dest a writable tree of sid whose files are hardlinks of committed ones
        (for a trusted writer only); returns its map. Takes sid's `tip/` when it has one
        (a rename is atomic: of two takers, one wins), else builds it from the chain when
        that is small; None: a big tree without a tip is mounted instead (many FileOps
        branching off one big image must not each copy its directories). Small means
        BUILD_BUDGET entries, or, after a run of s trusted steps were mounted one on the
        other (a FileOp chain on a big image), s * STEP_ENTRIES, checked when s is a power
        of two: building then costs about what the mounted steps did (ski rental)."""
        from llb.snapshot.treemap import build_map  # a writer's (see snapshot/driver.py)

        with self._maps_lock:
            known = self._maps.pop(sid, None)
        if self._take_tip(sid, dest):
            return known if known is not None else build_map(dest)
        streak = self._streaks.get(sid, 0)
        if streak & (streak - 1):
            return None  # not a power of two: no count this time
        budget = max(BUILD_BUDGET, streak * STEP_ENTRIES)
        for d in self.lowers(sid):
            budget -= _count_upto(os.path.join(self.index.root, d), budget)
            if budget < 0:
                return None
        row = self.index.row(sid)
        if row.kind != "layer":
            copy_tree(self.ensure_tree(sid), dest, link=True)
        else:
            self.build_tree(dest, self.index.tree_chain(sid))
        return build_map(dest)

    def _lock_tip(self, sid: str, how: int) -> int | None:
        """An fd of sid's tip directory flocked `how`, or None when it has no tip (or, with
        LOCK_NB, when someone else holds it). The lock is on the directory itself, so it
        is checked to still be sid's tip once held (a taker may have moved it)."""
        tip = os.path.join(self.index.snapshots_dir, sid, "tip")
        try:
            fd = os.open(tip, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, how)
            if os.stat(tip).st_ino == os.fstat(fd).st_ino:
                return fd
        except (BlockingIOError, FileNotFoundError):
            pass
        os.close(fd)
        return None

    def _take_tip(self, sid: str, dest: Path) -> bool:
        """Move sid's tip to dest unless it is gone or someone reads it."""
        fd = self._lock_tip(sid, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if fd is None:
            return False
        try:
            os.rename(self.index.snapshot_dir(sid) / "tip", dest)
            return True
        finally:
            os.close(fd)

    # ---- views

    @contextmanager
    def view(self, sid: str) -> Iterator[str]:
        fd = self._lock_tip(sid, fcntl.LOCK_SH)
        if fd is not None:
            try:
                yield os.path.join(self.index.snapshots_dir, sid, "tip")
            finally:
                os.close(fd)
            return
        lowers = self.lowers(sid)
        if len(lowers) == 1:
            yield os.path.join(self.index.root, lowers[0])
            return
        mnt = self.index.new_temp("view")
        mnt.mkdir()
        try:
            mount_overlay(mnt, self.index.root, lowers)
            try:
                yield os.fspath(mnt)
            finally:
                unmount(mnt)
        finally:
            os.rmdir(mnt)

    def lowers(self, sid: str) -> list[str]:
        """Directories (relative to the root, top first) whose overlay is sid's tree. A
        parent whose own stack is already MAX_LOWERS deep is flattened first. Memoised:
        committed snapshots never change (a later `flat/` only makes stacks shorter)."""
        cached = self._cache.get(sid)
        if cached is not None:
            return cached
        todo: list[tuple[str, str]] = []  # (layer snapshot, its parent), top first
        s: str | None = sid
        base: list[str] = []
        while s is not None:
            if s in self._cache:
                base = self._cache[s]
                break
            sdir = os.path.join(self.index.snapshots_dir, s)  # str: no pathlib when cached
            if os.path.isdir(os.path.join(sdir, "flat")):
                base = self._cache[s] = [self._rel(os.path.join(sdir, "flat"))]
                break
            row = self.index.row(s)
            if row.kind != "layer":
                base = self._cache[s] = [self._rel(self.ensure_tree(s))]
                break
            if row.parent is None:  # a layer without parent: its upper dir is its whole tree
                base = self._cache[s] = [self._rel(os.path.join(sdir, "fs"))]
                break
            todo.append((s, row.parent))
            s = row.parent
        dirs = base
        for s, parent in reversed(todo):
            if len(dirs) >= MAX_LOWERS:
                self._flatten(parent, dirs)
                dirs = self._cache[parent] = [self._rel(self.index.snapshot_dir(parent) / "flat")]
            dirs = [self._rel(os.path.join(self.index.snapshots_dir, s, "fs"))] + dirs
            self._cache[s] = dirs
        return dirs

    def forget(self) -> None:
        self._cache.clear()

    def _flatten(self, sid: str, dirs: list[str]) -> None:
        """Materialise sid's tree as `<snapshot>/flat`: its layer chain applied onto an empty
        directory by the merge engine (hardlinks, no data copied), which is the tree the
        overlay of `dirs` shows."""
        tmp = self.index.new_temp("flat")
        try:
            self.build_tree(tmp, self.index.tree_chain(sid))
            publish_cache(tmp, self.index.snapshot_dir(sid) / "flat")
        finally:
            remove_tree(tmp)
