"""The overlayfs snapshotter: a layer snapshot stores only its upperdir (`fs/`, kernel
whiteouts and opaque markers included); its tree is an overlay mount of its chain. Merge
and diff results are full trees (`tree/`). Chains deeper than MAX_LOWERS are flattened:
an ancestor gets a materialised `flat/` tree (its chain applied by the merge engine) that
later mounts use as their bottom layer."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from snapshot.copy import remove_tree
from snapshot.differ import LayeredLower, NeedView, PathLower, overlay_changes
from snapshot.driver import Driver, make_root, publish_cache
from snapshot.metadata import copy_metadata
from snapshot.layers import Change
from snapshot.mount import mount_overlay, unmount

if TYPE_CHECKING:
    from snapshot.store import Mutable

MAX_LOWERS = 64  # layers per mount before flattening (well inside one page of options)
LOOKUP_BUDGET = 4096  # upper entries x layers below which a commit looks paths up itself


def _few_entries(root: Path, limit: int) -> bool:
    """True when the tree at root has at most `limit` entries (stops counting early)."""
    n = 0
    stack = [str(root)]
    while stack:
        with os.scandir(stack.pop()) as it:
            for e in it:
                n += 1
                if n > limit:
                    return False
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
    return True


class OverlayDriver(Driver):
    kind = "overlayfs"
    layer_dirname = "fs"

    def __init__(self, store):
        super().__init__(store)
        self._cache: dict[str, list[str]] = {}

    def _rel(self, path: Path) -> str:
        return os.path.relpath(path, self.store.root)

    # ---- mutables

    def init_mutable(self, m: "Mutable") -> None:
        m.dir.mkdir()
        make_root(m.dir / "fs")
        if m.parent is not None:
            # overlay shows a merged directory with its upper's attributes: the root must
            # start as the parent's root (mode, owner, xattrs, times)
            top = self.store.root / self.lowers(m.parent.id)[0]
            copy_metadata(top, m.dir / "fs")
            (m.dir / "work").mkdir()
            (m.dir / "mnt").mkdir()

    def mount_mutable(self, m: "Mutable") -> Path:
        if m.parent is None:
            return m.dir / "fs"
        lowers = self.lowers(m.parent.id)
        mount_overlay(m.dir / "mnt", self.store.root, lowers,
                      self._rel(m.dir / "fs"), self._rel(m.dir / "work"))
        return m.dir / "mnt"

    def unmount_mutable(self, m: "Mutable") -> None:
        if m.parent is not None:
            unmount(m.dir / "mnt", lazy=False)  # EBUSY if a process still writes there

    def commit_mutable(self, m: "Mutable") -> list[Change]:
        upper = m.dir / "fs"
        if m.parent is None:
            changes = overlay_changes(upper, None)
        else:
            changes = None
            dirs = self.lowers(m.parent.id)
            if _few_entries(upper, LOOKUP_BUDGET // len(dirs)):
                try:  # look paths up in the layers: no mount for a small change
                    changes = overlay_changes(
                        upper, LayeredLower([str(self.store.root / d) for d in dirs]))
                except NeedView:
                    changes = None
            if changes is None:
                with self.view(m.parent.id) as lower:
                    changes = overlay_changes(upper, PathLower(lower))
        for name in ("work", "mnt"):
            remove_tree(m.dir / name)
        return changes

    # ---- views

    @contextmanager
    def view(self, sid: str) -> Iterator[Path]:
        lowers = self.lowers(sid)
        if len(lowers) == 1:
            yield self.store.root / lowers[0]
            return
        mnt = self.store.new_temp("view")
        mnt.mkdir()
        try:
            mount_overlay(mnt, self.store.root, lowers)
            try:
                yield mnt
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
        todo: list[tuple[str, str | None]] = []  # (layer snapshot, its parent), top first
        s: str | None = sid
        base: list[str] = []
        while s is not None:
            if s in self._cache:
                base = self._cache[s]
                break
            sdir = self.store.snapshot_dir(s)
            if (sdir / "flat").is_dir():
                base = self._cache[s] = [self._rel(sdir / "flat")]
                break
            row = self.store._row(s)
            if row.kind != "layer":
                base = self._cache[s] = [self._rel(self.ensure_tree(s))]
                break
            todo.append((s, row.parent))
            s = row.parent
        dirs = base
        for s, parent in reversed(todo):
            if len(dirs) >= MAX_LOWERS:
                self._flatten(parent, dirs)
                dirs = self._cache[parent] = [self._rel(self.store.snapshot_dir(parent) / "flat")]
            dirs = [self._rel(self.store.snapshot_dir(s) / "fs")] + dirs
            self._cache[s] = dirs
        return dirs

    def forget(self) -> None:
        self._cache.clear()

    def _flatten(self, sid: str, dirs: list[str]) -> None:
        """Materialise sid's tree as `<snapshot>/flat`: its layer chain applied onto an empty
        directory by the merge engine (hardlinks, no data copied), which is the tree the
        overlay of `dirs` shows."""
        tmp = self.store.new_temp("flat")
        try:
            self.build_tree(tmp, self.store._chain(sid))
            publish_cache(tmp, self.store.snapshot_dir(sid) / "flat")
        finally:
            remove_tree(tmp)
