"""The native snapshotter: every snapshot keeps its recorded diff laid out in `layer/`
(hardlinks into its tree) and, usually, its full tree in `tree/`; a snapshot without a
parent is all additions, so its `layer/` is its tree.

A mutable child a process may write is a full copy of its parent. A trusted child (its
writer replaces files, never edits an inode in place) instead takes over the parent's
`tree/` by a rename when no one is reading it, and is diffed at commit against a map of
what that tree held: a FileOp chain costs what each step changes, not the tree's size. A
parent whose tree was taken rebuilds it from its layer chain if it is ever needed again.
Readers of a tree hold a shared flock on `<snapshot>/tree.lock`; taking a tree needs it
exclusively (without waiting), so a tree is never taken from under a reader, in any process."""

from __future__ import annotations

import fcntl
import os
import threading
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from snapshot.copy import copy_tree, link_tree
from snapshot.differ import tree_changes, write_layer_dir
from snapshot.driver import Driver, make_root
from snapshot.layers import Change
from snapshot.treemap import TreeMap, build_map, map_changes

if TYPE_CHECKING:
    from snapshot.store import Mutable

_MAPS_KEPT = 8  # tree maps remembered per process (the tips of FileOp chains)


class NativeDriver(Driver):
    kind = "native"
    layer_dirname = "layer"

    def __init__(self, store):
        super().__init__(store)
        self._maps: OrderedDict[str, TreeMap] = OrderedDict()
        self._base_maps: dict[str, TreeMap] = {}  # mutable id -> map of the tree it took
        self._fresh: dict[str, dict[int, int]] = {}  # mutable id -> its copies' ctimes
        self._maps_lock = threading.Lock()

    def init_mutable(self, m: "Mutable") -> None:
        m.dir.mkdir()
        tree = m.dir / "tree"
        if m.parent is None:
            make_root(tree)
            return
        if m.trusted and self._take_tree(m.parent.id, tree, m.id):
            return
        with self._reading(m.parent.id) as ptree:
            if m.trusted:
                link_tree(ptree, tree)
            else:
                fresh: dict[int, int] = {}
                copy_tree(ptree, tree, fresh=fresh)
                self._fresh[m.id] = fresh

    def mount_mutable(self, m: "Mutable") -> Path:
        return m.dir / "tree"

    def unmount_mutable(self, m: "Mutable") -> None:
        pass

    def commit_mutable(self, m: "Mutable") -> list[Change]:
        tree = m.dir / "tree"
        base = self._base_maps.pop(m.id, None)
        if base is not None:
            changes, new = map_changes(tree, base)
            self._remember(m.id, new)
        elif m.parent is None:
            # everything is an addition: the tree is its own layer (kept as `layer/` only,
            # so it is never taken; a trusted child hardlinks it instead)
            changes = tree_changes(tree, None, same_fs=True)
            os.rename(tree, m.dir / "layer")
            return changes
        else:
            with self._reading(m.parent.id) as ptree:
                changes = tree_changes(tree, ptree, same_fs=True,
                                       fresh=self._fresh.pop(m.id, None))
        write_layer_dir(tree, m.dir / "layer", changes)
        return changes

    def discard_mutable(self, m: "Mutable") -> None:
        self._base_maps.pop(m.id, None)
        self._fresh.pop(m.id, None)

    @contextmanager
    def view(self, sid: str) -> Iterator[Path]:
        with self._reading(sid) as tree:
            yield tree

    # ---- trees

    @contextmanager
    def _reading(self, sid: str) -> Iterator[Path]:
        """sid's full tree, protected from being taken while we read it."""
        fd = self._lockfd(sid)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            yield self.ensure_tree(sid)
        finally:
            os.close(fd)

    def _lockfd(self, sid: str) -> int:
        return os.open(self.store.snapshot_dir(sid) / "tree.lock",
                       os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def _take_tree(self, sid: str, dest: Path, mid: str) -> bool:
        """Move sid's tree to dest if no one reads it; remember what it held."""
        tree = self.store.snapshot_dir(sid) / "tree"
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
                base = build_map(tree)
            os.rename(tree, dest)
            self._base_maps[mid] = base
            return True
        finally:
            os.close(fd)

    def _remember(self, sid: str, tree_map: TreeMap) -> None:
        with self._maps_lock:
            self._maps[sid] = tree_map
            while len(self._maps) > _MAPS_KEPT:
                self._maps.popitem(last=False)

    def ensure_tree(self, sid: str) -> Path:
        row = self.store._row(sid)
        if row.kind == "layer" and row.parent is None and not (self.store.snapshot_dir(sid) / "tree").exists():
            return self.layer_root(sid)  # a parentless layer's tree is its layer content
        return super().ensure_tree(sid)
