"""The part of the snapshot store that decides what stays: leases (named holders, such as a
cache record), holds (everything a live process's session committed, pinned, viewed or
prepared on, visible to every process through the DB until that session ends), and pruning
what nothing keeps. A prune in any process never removes what another live process holds,
and it runs beside them: see docs/internals.md."""

from __future__ import annotations

import os
import threading
import weakref
from collections import Counter

from llb.errors import is_no_space
from llb.fsutil import disk_usage, remove_tree
from llb.fsutil.locks import Mutex
from llb.snapshot.db import MetaDB, Row
from llb.snapshot.driver import Driver
from llb.snapshot.errors import SnapshotError
from llb.snapshot.index import Index
from llb.snapshot.lock import Session
from llb.snapshot.space import RESERVE, free_bytes

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any, Iterable

DELETE_BATCH = 32  # snapshots removed per transaction (see Keeping._delete)


class Keeping:
    """Store's methods for leases, holds and pruning (Store derives from it; the attributes
    below are the store's own)."""

    root: str
    db: MetaDB
    index: Index
    session: Session
    snapshots_dir: str
    unpack_dir: str
    _driver: Driver
    _lock: Mutex
    _state: threading.RLock
    _busy: Counter[str]
    _live: "weakref.WeakSet[Any]"  # the store's live Refs
    _pinned: set[str]
    _held: set[str]

    def _row(self, snapshot_id: str) -> Row:
        raise NotImplementedError

    def new_temp(self, prefix: str) -> Path:
        raise NotImplementedError

    def generation(self) -> int:
        """A counter every removal of snapshots bumps: read it before learning snapshot ids
        elsewhere (a cache lookup), pass it to pin() to know whether they may have gone."""
        return self.db.generation()

    def pin(self, ids: Iterable[str], since: int | None = None) -> set[str]:
        """Keep these snapshots, and all they depend on, from every prune (this process's and
        others') until close. Returns the ids that do not exist (any more): when no snapshot
        was removed since generation `since`, the ids are taken as existing unchecked."""
        want = {i for i in ids if i is not None}
        if not want:
            return set()
        with self._lock.held():
            missing: set[str] = set()
            if since is None or self.db.generation() != since:
                missing = want - self.db.existing(want)
            with self._state:
                new = list(want - missing - self._held)
            if new:
                with self.db.transaction() as c:
                    MetaDB.hold(c, self.session.id, new)
            with self._state:
                self._held.update(new)
                self._pinned.update(want - missing)
        return missing

    def in_use(self) -> set[str]:
        """Snapshots other live processes hold (published, pinned, viewed, prepared on) and
        everything those depend on: what a prune in this process cannot free now."""
        with self._lock.held():
            return self._closure(self.db.held(exclude=self.session.id),
                                 {r.id: r for r in self.db.all_rows()})

    def lease(self, snapshot_id: str, holder: str) -> None:
        """Keep snapshot_id (and all it depends on) from prune until released by holder."""
        with self._lock.held():
            self._row(snapshot_id)
            with self.db.transaction() as c:
                c.execute("INSERT OR IGNORE INTO leases (id, holder) VALUES (?, ?)",
                          (snapshot_id, holder))

    def release(self, snapshot_id: str, holder: str) -> None:
        """Drop holder's lease (no error when it holds none)."""
        with self._lock.held(), self.db.transaction() as c:
            c.execute("DELETE FROM leases WHERE id=? AND holder=?", (snapshot_id, holder))

    def leases(self, snapshot_id: str) -> list[str]:
        """Holders of leases on snapshot_id."""
        return self.db.holders(snapshot_id)

    def remove(self, snapshot_id: str) -> int:
        """Remove one snapshot nothing leases, holds or depends on; returns bytes freed."""
        with self._lock.held():
            self._row(snapshot_id)
            if self.db.holders(snapshot_id) or self._busy[snapshot_id] or \
                    snapshot_id in self._pinned or \
                    snapshot_id in self.db.held(exclude=self.session.id):
                raise SnapshotError(f"snapshot {snapshot_id} is leased or in use",
                                    path=snapshot_id)
            deps = self.db.dependents(snapshot_id)
            if deps:
                raise SnapshotError(f"snapshot {snapshot_id} has dependents ({deps[0]}, ...)",
                                    path=snapshot_id)
            freed, trash = self._delete([snapshot_id])
        _empty_trash(trash)
        return freed

    def prune(self) -> int:
        """Remove every snapshot no lease, live Ref, pin or in-use mount (of this process)
        and no other live process holds, keeping all that a kept snapshot depends on.
        Returns bytes freed."""
        with self._lock.held():
            freed, trash = self._delete(sorted(self._unkept()))
        _empty_trash(trash)  # outside the root lock: solves need not wait for it
        return freed

    def unreferenced(self) -> set[str]:
        """What prune() would remove now: the snapshots nothing keeps (no lease, no hold of a
        live process, nothing kept depends on them)."""
        with self._lock.held():
            return self._unkept()

    def _unkept(self) -> set[str]:
        rows = {r.id: r for r in self.db.all_rows()}
        with self._state:
            roots = self.db.leased() | self.db.held(exclude=self.session.id) | \
                {r.id for r in list(self._live)} | self._pinned | \
                {k for k, v in self._busy.items() if v}
        return set(rows) - self._closure(roots, rows)

    def _closure(self, roots: set[str], rows: dict[str, Row]) -> set[str]:
        """The roots that exist and every snapshot they depend on (parents, inputs)."""
        keep: set[str] = set()
        stack = [r for r in roots if r in rows]
        while stack:
            sid = stack.pop()
            if sid in keep:
                continue
            keep.add(sid)
            row = rows[sid]
            if row.parent:
                stack.append(row.parent)
            stack.extend(self.db.inputs(sid))
        return keep

    def usage(self, snapshot_id: str) -> int:
        """Bytes on disk under the snapshot's directory, each inode counted once (data it
        shares by hardlink with other snapshots counts in each of them)."""
        self._row(snapshot_id)
        return disk_usage([os.path.join(self.snapshots_dir, snapshot_id)])

    def usage_stamp(self, snapshot_id: str) -> str:
        """A value that changes whenever usage() may have: a snapshot is immutable, but its
        directory's top level is not (a native child takes a private tree, a tree is built
        again, overlay keeps a chain tip), and every such change moves a directory there
        (its mtime, and its link count where timestamps are whole seconds)."""
        self._row(snapshot_id)
        try:
            st = os.lstat(os.path.join(self.snapshots_dir, snapshot_id))
        except FileNotFoundError:
            return "gone"
        return f"{st.st_mtime_ns}.{st.st_nlink}"

    def _delete(self, ids: list[str]) -> tuple[int, list[Path]]:
        """Drop rows, then move the directories out of sight, DELETE_BATCH snapshots at a
        time (call under the root lock); returns the bytes freed and the moved directories,
        for the caller to remove once it released the lock. On a nearly full disk each
        batch is removed at once: its transaction needed little room, and its removal
        frees room for the next. (A kill between rows and directories leaves directories
        without rows, which the next open removes.)"""
        freed = 0
        trash: list[Path] = []
        for start in range(0, len(ids), DELETE_BATCH):
            batch = ids[start:start + DELETE_BATCH]
            freed += disk_usage([os.path.join(self.snapshots_dir, i) for i in batch], exclusive=True)
            with self.db.transaction() as c:
                MetaDB.bump_generation(c)
                for i in batch:
                    MetaDB.delete(c, i)
            for i in batch:
                try:
                    os.unlink(os.path.join(self.unpack_dir, f"{i}.lock"))
                except FileNotFoundError:
                    pass
                moved = self._move_out(os.path.join(self.snapshots_dir, i))
                if moved is not None:
                    trash.append(moved)
            if trash and free_bytes(self.root) < RESERVE:
                _empty_trash(trash)
                trash = []
        if ids:
            self.index.forget()
            self._driver.forget()
        return freed, trash

    def _move_out(self, path: str) -> Path | None:
        """Move a snapshot directory into this session's temporaries (removed by whoever
        reaps the session, should this process die first); where even that move finds no
        room (a directory entry may need a block), remove it in place: None."""
        trash = self.new_temp("trash")
        try:
            os.rename(path, trash)
        except FileNotFoundError:
            return None
        except OSError as e:
            if not is_no_space(e):
                raise
            remove_tree(path)
            return None
        return trash


def _empty_trash(trash: list[Path]) -> None:
    for path in trash:
        remove_tree(path)
