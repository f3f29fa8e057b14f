"""The native snapshotter: every snapshot is a full tree (`tree/`) plus its recorded diff
laid out in `layer/` (hardlinks into the tree). A mutable child is a full copy of its
parent, or, for trusted writers, a tree of hardlinks to it."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from snapshot.copy import copy_tree, link_tree
from snapshot.differ import tree_changes, write_layer_dir
from snapshot.driver import Driver
from snapshot.layers import Change

if TYPE_CHECKING:
    from snapshot.store import Mutable


class NativeDriver(Driver):
    kind = "native"
    layer_dirname = "layer"

    def init_mutable(self, m: "Mutable") -> None:
        m.dir.mkdir()
        tree = m.dir / "tree"
        if m.parent is None:
            tree.mkdir(0o755)
            return
        ptree = self.ensure_tree(m.parent.id)
        (link_tree if m.trusted else copy_tree)(ptree, tree)

    def mount_mutable(self, m: "Mutable") -> Path:
        return m.dir / "tree"

    def unmount_mutable(self, m: "Mutable") -> None:
        pass

    def commit_mutable(self, m: "Mutable") -> list[Change]:
        tree = m.dir / "tree"
        ptree = self.ensure_tree(m.parent.id) if m.parent else None
        changes = tree_changes(tree, ptree)
        write_layer_dir(tree, m.dir / "layer", changes)
        return changes

    @contextmanager
    def view(self, sid: str) -> Iterator[Path]:
        yield self.ensure_tree(sid)

    def ensure_tree(self, sid: str) -> Path:
        row = self.store._row(sid)
        if row.kind == "layer" and row.parent is None and not (self.store.snapshot_dir(sid) / "tree").exists():
            return self.layer_root(sid)  # a computed diff: its tree is its layer content
        return super().ensure_tree(sid)
