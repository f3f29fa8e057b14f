"""The committed snapshots as the store records them, for the drivers: where each lives on
disk, its DB row, its layer chain (memoised: committed snapshots never change) and its
recorded diff. The store writes; drivers only read through this."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict

from llb.snapshot.chains import Chains
from llb.snapshot.db import MetaDB, Row
from llb.snapshot.errors import NotFoundError, SnapshotError
from llb.snapshot.layers import Change

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Callable, TypeVar

    _R = TypeVar("_R")


_REMEMBERED = 200_000  # changes of recently committed layers kept in memory (Index)


def new_id() -> str:
    """A fresh snapshot (or temporary) id: 24 random hex digits (os.urandom: the uuid module
    would load platform and ctypes' uuid helpers into every command)."""
    return os.urandom(12).hex()


class Index:
    """Rows, chains and diffs of the committed snapshots under `root`, plus the paths of the
    root's layout (snapshots/<id>, the session's temporaries)."""

    def __init__(self, root: str, db: MetaDB, session_dir: str):
        self.root = root
        self.db = db
        self.snapshots_dir = os.path.join(root, "snapshots")
        self.session_dir = session_dir
        self.closed = False
        self.chains = Chains(self.lineage, db.inputs)
        # layers known to have content (built, or pulled and unpacked): never lazy again
        self.solid: set[str] = set()
        # snapshots whose whole tree chain is known to have content (see tree_needs)
        self.solid_trees: set[str] = set()
        # the store's: unpack the lazy layers among these ids (and what they need below)
        self.ensure: Callable[[list[str]], None] | None = None
        # the recorded diffs of layers this process committed, newest last, up to
        # _REMEMBERED changes in all: a merge of layers just built (the usual case) reads
        # them here instead of back from the DB (~11k instructions a change)
        self._remembered: OrderedDict[str, list[Change]] = OrderedDict()
        self._remembered_n = 0
        self._remembered_lock = threading.Lock()

    def snapshot_dir(self, snapshot_id: str) -> Path:
        """Where a committed snapshot's directory is."""
        from pathlib import Path  # not for a cached solve (pathlib loads re, enum, ...)

        return Path(self.snapshots_dir, snapshot_id)

    def new_temp(self, prefix: str) -> Path:
        """A fresh path (not created) in this process's temporary directory."""
        from pathlib import Path  # not for a cached solve (pathlib loads re, enum, ...)

        return Path(self.session_dir, f"{prefix}-{new_id()}")

    def row(self, snapshot_id: str) -> Row:
        """The snapshot's DB row; NotFoundError when unknown or removed."""
        return self._found(snapshot_id, self.db.row)

    def lineage(self, snapshot_id: str) -> list[Row]:
        """The snapshot's DB row, then its parent's and so on while a row is a layer's
        (MetaDB.lineage); NotFoundError when the snapshot is unknown or removed."""
        return self._found(snapshot_id, self.db.lineage)

    def _found(self, snapshot_id: str, read: Callable[[str], _R | None]) -> _R:
        """What read(snapshot_id) gives; NotFoundError where it gives nothing (None, [])."""
        if self.closed:
            raise SnapshotError(f"the store at {self.root} is closed")
        got = read(snapshot_id)
        if not got:
            raise NotFoundError(f"snapshot {snapshot_id} not found (unknown or removed)",
                                path=snapshot_id)
        return got

    def remember_changes(self, layer_id: str, changes: list[Change]) -> None:
        """Layer layer_id was committed with these changes, as recorded (sorted by path):
        changes() gives them without reading the DB (a committed diff never changes)."""
        with self._remembered_lock:
            old = self._remembered.pop(layer_id, None)
            self._remembered[layer_id] = changes
            self._remembered_n += len(changes) - (len(old) if old is not None else 0)
            while self._remembered_n > _REMEMBERED and self._remembered:
                self._remembered_n -= len(self._remembered.popitem(last=False)[1])

    def changes(self, layer_id: str) -> list[Change]:
        """The recorded diff of a layer, sorted by path (a lazy layer is unpacked first)."""
        got = self._remembered.get(layer_id)
        if got is not None:
            return list(got)  # (the caller's own list, as from the DB)
        if layer_id not in self.solid and self.ensure is not None:
            self.ensure([layer_id])
        return self.db.changes(layer_id)

    def lazy(self, ids: list[str]) -> list[str]:
        """The lazy layers among ids, in their order (the others are remembered as solid)."""
        unknown = [i for i in dict.fromkeys(ids) if i not in self.solid]
        if not unknown:
            return []
        lazy = self.db.lazy_among(unknown)
        self.solid.update(i for i in unknown if i not in lazy)
        return [i for i in dict.fromkeys(ids) if i in lazy]

    def chain(self, snapshot_id: str) -> list[str]:
        """Layer ids of a snapshot's chain, oldest first, repetitions included (ChainError
        when a merge repeating its inputs made it too long to list)."""
        self.row(snapshot_id)  # still there?
        return self.chains.layers(snapshot_id)

    def tree_chain(self, snapshot_id: str) -> list[str]:
        """The layers whose application builds the snapshot's tree: its chain with each
        repeated layer kept at its last occurrence only (the same tree, see
        snapshot.chains)."""
        self.row(snapshot_id)
        return self.chains.tree_layers([(snapshot_id, 0)])

    def tree_needs(self, snapshot_id: str) -> list[str]:
        """The lazy layers of the snapshot's tree chain, which must be unpacked before its
        tree can be built. A layer whose parent's tree was known complete is answered
        without listing its chain: a FileOp chain of n steps costs n lookups, not n^2/2.
        The caller calls tree_solid() once those layers have content."""
        row = self.row(snapshot_id)
        if snapshot_id in self.solid_trees:
            return []
        if row.kind == "layer" and snapshot_id in self.solid \
                and (row.parent is None or row.parent in self.solid_trees):
            self.solid_trees.add(snapshot_id)
            return []
        return self.lazy(self.chains.tree_layers([(snapshot_id, 0)]))

    def tree_solid(self, snapshot_id: str) -> None:
        """Every layer of the snapshot's tree chain has content now (never lazy again)."""
        self.solid_trees.add(snapshot_id)

    def forget(self) -> None:
        """Drop memoised chains and diffs (snapshots were removed)."""
        self.chains.forget()
        self.solid_trees.clear()
        with self._remembered_lock:
            self._remembered.clear()
            self._remembered_n = 0
