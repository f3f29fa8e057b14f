"""The overlayfs snapshotter: a layer snapshot stores only its upperdir (`fs/`, kernel
whiteouts and opaque markers included); its tree is an overlay mount of its chain. Merge
and diff results are full trees (`tree/`). Chains deeper than MAX_LOWERS are flattened:
an ancestor gets a materialised `flat/` tree that later mounts use as their bottom layer."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from snapshot.copy import copy_tree, remove_tree
from snapshot.differ import overlay_changes
from snapshot.driver import Driver, publish_cache
from snapshot.errors import SnapshotError
from snapshot.layers import Change
from snapshot.mount import OPTION_LIMIT, mount_overlay, overlay_options, unmount

if TYPE_CHECKING:
    from snapshot.store import Mutable

MAX_LOWERS = 64  # layers per mount before flattening (well inside one page of options)


class OverlayDriver(Driver):
    kind = "overlayfs"
    layer_dirname = "fs"

    def _rel(self, path: Path) -> str:
        return os.path.relpath(path, self.store.root)

    # ---- mutables

    def init_mutable(self, m: "Mutable") -> None:
        m.dir.mkdir()
        (m.dir / "fs").mkdir(0o755)
        if m.parent is not None:
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
            unmount(m.dir / "mnt")

    def commit_mutable(self, m: "Mutable") -> list[Change]:
        if m.parent is None:
            changes = overlay_changes(m.dir / "fs", None)
        else:
            with self.view(m.parent.id) as lower:
                changes = overlay_changes(m.dir / "fs", lower)
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
        """Directories (relative to the root, top first) whose overlay is sid's tree,
        flattening an ancestor first when the chain is too deep for one mount."""
        while True:
            dirs, snaps = self._stack(sid)
            if len(dirs) <= MAX_LOWERS and len(overlay_options(dirs, "x" * 60, "x" * 60)) < OPTION_LIMIT:
                return dirs
            j = max(len(dirs) - MAX_LOWERS, 1)
            self._flatten(snaps[j], dirs[j:])

    def _stack(self, sid: str) -> tuple[list[str], list[str]]:
        dirs: list[str] = []
        snaps: list[str] = []
        s: str | None = sid
        while s is not None:
            sdir = self.store.snapshot_dir(s)
            if (sdir / "flat").is_dir():
                dirs.append(self._rel(sdir / "flat"))
                break
            row = self.store._row(s)
            if row.kind != "layer":
                dirs.append(self._rel(self.ensure_tree(s)))
                break
            dirs.append(self._rel(sdir / "fs"))
            snaps.append(s)
            s = row.parent
        return dirs, snaps

    def _flatten(self, sid: str, dirs: list[str]) -> None:
        """Materialise sid's tree as `<snapshot>/flat` by copying its overlay view."""
        if len(dirs) > MAX_LOWERS:
            raise SnapshotError(f"cannot flatten snapshot {sid}: {len(dirs)} layers")
        tmp = self.store.new_temp("flat")
        mnt = self.store.new_temp("flatmnt")
        mnt.mkdir()
        try:
            if len(dirs) == 1:
                copy_tree(self.store.root / dirs[0], tmp)
            else:
                mount_overlay(mnt, self.store.root, dirs)
                try:
                    copy_tree(mnt, tmp)
                finally:
                    unmount(mnt)
            publish_cache(tmp, self.store.snapshot_dir(sid) / "flat")
        finally:
            os.rmdir(mnt)
            remove_tree(tmp)
