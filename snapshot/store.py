"""The snapshot store: one root directory holding the metadata DB, committed snapshots and
per-process temporaries. Public API (docs/internals.md): Store, Ref, Mutable."""

from __future__ import annotations

import importlib
import os
import threading
import time
import weakref
from collections import Counter
from contextlib import contextmanager

from llb.fsutil import remove_tree
from llb.fsutil.locks import Mutex, try_lock, unlock_file
from llb.snapshot.blobs import BlobOpener, BlobRecord
from llb.snapshot.chains import Item
from llb.errors import NoSpaceError, is_no_space
from llb.snapshot.db import MetaDB, Row
from llb.snapshot.driver import Driver
from llb.snapshot.index import Index, new_id
from llb.snapshot.errors import SnapshotError
from llb.snapshot.imagelayers import ImageLayers
from llb.snapshot.keeping import Keeping
from llb.snapshot.layers import Change, Layer
from llb.snapshot.lock import Session
from llb.snapshot.mount import mounts_under, overlay_works, unmount
from llb.resource import Closeable

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Callable, Iterator, NoReturn, Sequence

SNAPSHOTTERS = ("auto", "overlayfs", "native")
# a root's snapshotter kind -> the module and class of its driver (only that one is imported)
_DRIVERS = {"overlayfs": ("llb.snapshot.overlay", "OverlayDriver"),
            "native": ("llb.snapshot.native", "NativeDriver")}


class Ref:
    """A handle on a committed (immutable) snapshot."""

    __slots__ = ("id", "store", "__weakref__")

    def __init__(self, store: "Store", snapshot_id: str):
        self.store = store
        self.id = snapshot_id

    def layer_chain(self) -> list[Layer]:
        """The layers that rebuild this snapshot's tree from empty, oldest first."""
        return self.store._layers(self.store._chain(self.id))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Ref) and other.id == self.id and other.store is self.store

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"Ref({self.id})"


class Mutable:
    """A snapshot being written: mount it, write, then commit (immutable) or discard."""

    def __init__(self, store: "Store", mutable_id: str, path: Path, parent: Ref | None,
                 trusted: bool):
        self.store, self.id, self.dir, self.parent = store, mutable_id, path, parent
        self.trusted = trusted
        self.parent_id = parent.id if parent else None
        self.underlay: Path | None = None  # see Store.prepare
        self._mounts = 0
        self._mount_path: Path | None = None
        self._done = False
        self._lock = threading.Lock()

    @contextmanager
    def mount(self) -> Iterator[Path]:
        """A writable directory showing the full tree (parent plus what was written)."""
        self._check()
        with self._lock:
            if self._mounts == 0:
                self._mount_path = self.store._driver.mount_mutable(self)
            self._mounts += 1
            path = self._mount_path
        assert path is not None  # set by the first of the nested mounts, kept until the last
        try:
            yield path
        finally:
            with self._lock:
                self._mounts -= 1
                if self._mounts == 0:
                    self.store._driver.unmount_mutable(self)
                    self._mount_path = None

    def commit(self) -> Ref:
        """Freeze this snapshot; its diff against the parent is computed now and recorded."""
        self._check()
        if self._mounts:
            raise SnapshotError(f"snapshot {self.id} is still mounted")
        parent = self.parent_id
        changes = self.store._driver.commit_mutable(self)
        self._done = True
        try:
            ref = self.store._publish(self.id, self.dir, "layer", parent, [], changes)
        except BaseException:
            remove_tree(self.dir)
            raise
        finally:
            self.store._unbusy(parent)
            self.parent = None  # a finished mutable no longer holds its parent alive
        return ref

    def done(self) -> None:
        """(The store's) the driver committed it: no discard will touch it any more."""
        self._done = True

    def discard(self) -> None:
        """Throw the snapshot away (idempotent)."""
        if self._done:
            return
        self._done = True
        if self._mounts:
            self.store._driver.unmount_mutable(self)
            self._mounts = 0
        self.store._driver.discard_mutable(self)
        remove_tree(self.dir)
        self.store._unbusy(self.parent_id)
        self.parent = None

    def _check(self) -> None:
        if self._done:
            raise SnapshotError(f"snapshot {self.id} was already committed or discarded")


class Store(ImageLayers, Keeping, Closeable):
    """Snapshots under `root`. snapshotter: "auto" (overlayfs when a test mount works, else
    native), "overlayfs" or "native"; a root keeps the kind it was created with."""

    def __init__(self, root: str | os.PathLike[str], snapshotter: str = "auto"):
        if snapshotter not in SNAPSHOTTERS:
            raise SnapshotError(f"unknown snapshotter {snapshotter!r} (use auto, overlayfs or native)")
        self.root = os.path.abspath(root)
        self.snapshots_dir = os.path.join(self.root, "snapshots")
        self.tmp_dir = os.path.join(self.root, "tmp")
        self.unpack_dir = os.path.join(self.root, "unpack")  # <id>.lock: one per lazy layer
        # reads pulled blobs when a lazy layer is unpacked (the solver sets it)
        self.opener: BlobOpener | None = None
        try:
            for d in (self.root, self.snapshots_dir, self.tmp_dir, self.unpack_dir):
                os.makedirs(d, exist_ok=True)
            self._lock = Mutex(os.path.join(self.root, "lock"))  # every change of snapshots and DB
        except OSError as e:
            _reraise(e, self.root)
        try:
            self.db = MetaDB(os.path.join(self.root, "metadata.db"))
        except BaseException:
            self._lock.close()
            raise
        self._state = threading.RLock()
        self._busy: Counter[str] = Counter()  # snapshots this process uses (views, parents)
        self._live: "weakref.WeakSet[Ref]" = weakref.WeakSet()
        self._pinned: set[str] = set()  # pin(): kept until close
        # snapshots this session holds in the DB (`holds`), so a prune in another process
        # keeps them: everything it published, pinned, viewed or prepared on, until close
        self._held: set[str] = set()
        self._closed = False
        try:
            with self._lock.held():  # a session is born under the root lock, where cleanup runs
                self.session = Session(self.tmp_dir, new_id())
        except BaseException as e:
            self.db.close()
            self._lock.close()
            if isinstance(e, OSError):
                _reraise(e, self.root)
            raise
        self.index = Index(self.root, self.db, self.session.dir)
        self.index.ensure = self._ensure_content
        try:
            with self._lock.held():
                self.kind = self._pick_kind(snapshotter)
                self._cleanup()
        except BaseException as e:
            remove_tree(self.session.dir)
            self.session.close()
            self.db.close()
            self._lock.close()
            if isinstance(e, OSError):
                _reraise(e, self.root)
            raise
        module, cls = _DRIVERS[self.kind]
        self._driver: Driver = getattr(importlib.import_module(module), cls)(self.index)

    # ---- public API

    def prepare(self, parent: Ref | None, *, trusted: bool = False,
                underlay: Path | None = None) -> Mutable:
        """A new mutable snapshot on parent (None: empty). trusted=True promises the writer
        never modifies an existing inode in place (it writes a temp file and renames).
        underlay: a directory (never modified) that a mount may show beneath the parent's
        tree, where that costs nothing (overlayfs: a bottom layer); what of it is left
        untouched is no part of the snapshot. A hint: other snapshotters ignore it."""
        if parent is not None:
            self._row(parent.id)
        self._busy_add(parent.id if parent else None)
        mid = new_id()
        m = Mutable(self, mid, self._session_path(mid), parent, trusted)
        m.underlay = underlay
        try:
            if parent is not None:
                self._ensure_tree(parent.id)
            self._driver.init_mutable(m)
        except BaseException:
            remove_tree(m.dir)
            self._unbusy(parent.id if parent else None)
            raise
        return m

    def delete_paths(self, parent: Ref, paths: Sequence[str]) -> Ref | None:
        """A new layer on parent deleting what removing each of `paths` in order takes away
        (clean relative paths; recursively, a final symlink itself; a missing one takes
        nothing), found in parent's tree and written without copying or mounting it. None,
        and nothing done, when a path's parent directories hold a symlink: the caller then
        prepares a mutable as usual."""
        from llb.snapshot.removal import removal_paths  # a writer's: see snapshot/driver.py

        with self.view(parent) as tree:
            gone = removal_paths(os.fspath(tree), paths)
            if gone is None:
                return None
            sid = new_id()
            tmp = self._session_path(sid)
            tmp.mkdir()
            try:
                changes = self._driver.build_removal(tmp, tree, gone)
                return self._publish(sid, tmp, "layer", parent.id, [], changes)
            except BaseException:
                remove_tree(tmp)
                raise

    def merge(self, refs: list[Ref | None]) -> Ref | None:
        """A snapshot whose tree is every input's layer chain applied in order onto an empty
        tree (later inputs win, deletions replayed). Scratch inputs are dropped."""
        inputs = [r for r in refs if r is not None]
        if not inputs:
            return None
        if len(inputs) == 1:
            return self.get(inputs[0].id)
        ids = [r.id for r in inputs]
        for i in ids:
            self._row(i)
        build = [(i, 0) for i in ids]
        # a merge of pulled layers not unpacked yet stays lazy: its tree is built on first
        # use (exporting it as an image reads no layer)
        if self.index.lazy(self.index.chains.tree_layers(build)):
            return self._materialised("merge", ids)
        return self._materialised("merge", ids, build=build)

    def diff(self, lower: Ref | None, upper: Ref | None) -> Ref | None:
        """What upper changed relative to lower: merge([lower, diff]) has upper's tree.

        BuildKit's rule (v0.11.6 cache/manager.go Diff, cache/refs.go layerWalk): when
        upper's chain is lower's plus at least two more layers, the diff is those layers
        (reused, deletions included); when upper is one layer on lower itself, that layer;
        otherwise one new layer computed by comparing the two trees. (A merge repeating
        lower, like merge([lower, lower]), is a tree comparison: empty.)"""
        if lower is None:
            return None if upper is None else self.get(upper.id)
        if upper is not None and lower.id == upper.id:
            return None
        if upper is not None:
            chains = self.index.chains
            if chains.length(upper.id) > chains.length(lower.id) + 1 \
                    and chains.is_prefix(lower.id, upper.id):
                return self._materialised("tail", [lower.id, upper.id])
            row = self._row(upper.id)
            if row.kind == "layer" and row.parent == lower.id:
                return self._materialised("diff", [upper.id])
        return self._computed_diff(lower, upper)

    @contextmanager
    def view(self, ref: Ref) -> Iterator[Path]:
        """The snapshot's full tree, read-only (never write there)."""
        from pathlib import Path  # not for a cached solve (pathlib loads re, enum, ...)

        with self.view_dir(ref) as path:
            yield Path(path)

    @contextmanager
    def view_dir(self, ref: Ref) -> Iterator[str]:
        """view()'s tree as a str: what a cached solve's export reads, without pathlib."""
        self._row(ref.id)
        self._busy_add(ref.id)
        try:
            self._ensure_tree(ref.id)
            with self._driver.view(ref.id) as path:
                yield path
        finally:
            self._unbusy(ref.id)

    def add_image_layers(self, parent: Ref | None, blobs: Sequence[BlobRecord], origin: str,
                         keep: Sequence[str] = ()) -> Ref | None:
        """One lazy layer per blob, each on the one before (bottom first), on parent; the
        top one's ref (parent when blobs is empty). A layer with the same parent and blob is
        reused (containerd's chain ids): images sharing base layers share their snapshots.
        origin is handed back to the opener to read a blob; keep: digests GC keeps while
        these layers exist (the image's manifest and config). The layers are held by this
        session until it closes, like anything it publishes (snapshot/imagelayers.py)."""
        top = self.add_image_rows(parent.id if parent is not None else None, blobs, origin,
                                  keep)
        return self.get(top) if top is not None else None

    def get(self, snapshot_id: str) -> Ref:
        """A ref on a committed snapshot; NotFoundError when unknown or removed. (A prune in
        another process may remove it until it is pinned, mounted or viewed here.)"""
        self._row(snapshot_id)
        ref = Ref(self, snapshot_id)
        self._live.add(ref)
        return ref

    def exists(self, snapshot_id: str) -> bool:
        return self.db.row(snapshot_id) is not None

    def snapshot_ids(self) -> list[str]:
        """Every committed snapshot id."""
        return [r.id for r in self.db.all_rows()]

    def close(self) -> None:
        """Release this process's temporaries, mounts and session leases."""
        if self._closed:
            return
        self._closed = True
        self.index.closed = True
        with self._lock.held():
            self._reap_session(self.session.dir, self.session.id)
        self.session.close()
        self.db.close()
        self._lock.close()

    # ---- internals shared with the drivers

    def snapshot_dir(self, snapshot_id: str) -> Path:
        return self.index.snapshot_dir(snapshot_id)

    def new_temp(self, prefix: str) -> Path:
        """A fresh path (not created) in this process's temporary directory."""
        return self.index.new_temp(prefix)

    def _session_path(self, name: str) -> Path:
        """`name` in this process's temporary directory, as a Path for the writers."""
        from pathlib import Path  # not for a cached solve (pathlib loads re, enum, ...)

        return Path(self.session.dir, name)

    def _row(self, snapshot_id: str) -> Row:
        return self.index.row(snapshot_id)

    def _chain(self, snapshot_id: str) -> list[str]:
        return self.index.chain(snapshot_id)

    def _layers(self, ids: list[str]) -> list[Layer]:
        return self._driver.layers(ids)

    def _busy_add(self, sid: str | None) -> None:
        """sid is viewed or prepared on: held (in the DB too, once per session) until then."""
        if sid is None:
            return
        with self._state:
            self._busy[sid] += 1
            held = sid in self._held
        if not held:
            with self._lock.held():
                self._row(sid)
                with self.db.transaction() as c:
                    MetaDB.hold(c, self.session.id, [sid])
            with self._state:
                self._held.add(sid)

    def _unbusy(self, sid: str | None) -> None:
        """No longer viewed or prepared on here (its DB hold stays until close: a later use
        in this session costs no write)."""
        if sid is None:
            return
        with self._state:
            self._busy[sid] -= 1
            if self._busy[sid] <= 0:
                del self._busy[sid]

    def _publish(self, sid: str, tmp: Path, kind: str, parent: str | None, inputs: list[str],
                 changes: list[Change] | None) -> Ref:
        """Make a finished temporary directory a committed snapshot: rename it into place,
        then insert its row (and diff) in one transaction. Until the row exists it is not
        visible; a crash in between leaves an orphan the next open removes, a failed insert
        (a full disk) takes the directory back to `tmp`, which the caller removes."""
        with self._lock.held():
            for dep in ([parent] if parent else []) + inputs:
                self._row(dep)
            os.rename(tmp, os.path.join(self.snapshots_dir, sid))
            try:
                self._publish_row(sid, kind, parent, inputs, changes)
            except BaseException:
                os.rename(os.path.join(self.snapshots_dir, sid), tmp)
                raise
            if kind == "layer":
                self.index.solid.add(sid)  # built here: never lazy
        return self.get(sid)

    def _publish_row(self, sid: str, kind: str, parent: str | None, inputs: list[str],
                     changes: list[Change] | None) -> None:
        """The row, held by this session from the start (a prune elsewhere never sees it
        unheld before whoever asked for it can lease it)."""
        with self.db.transaction() as c:
            recorded = MetaDB.insert(c, sid, kind, parent, time.time(), inputs, changes)
            MetaDB.hold(c, self.session.id, [sid])
        with self._state:
            self._held.add(sid)
        if recorded is not None:
            self.index.remember_changes(sid, recorded)

    def _materialised(self, kind: str, inputs: list[str], *,
                      build: list[Item] | None = None) -> Ref:
        """Publish a snapshot made of others' layers: a merge of `inputs` (their chains in
        order), a "diff" listing layers, or a "tail" (inputs lower, upper: upper's chain
        above lower's). Its tree is its chain applied onto an empty directory, each
        repeated layer once: now when `build` gives the chain's items, else on first use."""
        for i in inputs:
            self._busy_add(i)
        try:
            sid = new_id()
            tmp = self._session_path(sid)
            tmp.mkdir()
            try:
                if build is not None:
                    self._driver.build_tree(tmp / "tree", self.index.chains.tree_layers(build))
                return self._publish(sid, tmp, kind, None, inputs, None)
            except BaseException:
                remove_tree(tmp)
                raise
        finally:
            for i in inputs:
                self._unbusy(i)

    def _computed_diff(self, lower: Ref, upper: Ref | None) -> Ref | None:
        """One new layer from comparing two trees (the non-prefix case of diff)."""
        from llb.snapshot.differ import tree_changes  # a writer's: see snapshot/driver.py

        sid = new_id()
        tmp = self._session_path(sid)
        tmp.mkdir()
        try:
            with self.view(lower) as lpath:
                if upper is None:
                    empty = self.new_temp("empty")
                    empty.mkdir()
                    changes = tree_changes(empty, lpath, compare_content=True)
                    self._driver.build_layer(tmp, empty, changes)
                else:
                    with self.view(upper) as upath:
                        changes = tree_changes(upath, lpath, compare_content=True)
                        self._driver.build_layer(tmp, upath, changes)
            if not changes:
                remove_tree(tmp)
                return None
            return self._publish(sid, tmp, "layer", None, [], changes)
        except BaseException:
            remove_tree(tmp)
            raise

    def _apply_layer(self, sid: str, parent_id: str | None,
                     apply: Callable[[Path], None]) -> None:
        """Build layer sid by `apply(tree)` on a trusted mutable of the driver (so its diff
        is recorded as any layer's) over its parent's tree, in this session's directory,
        then rename it into place and record it (ImageLayers._unpack holds its lock)."""
        parent = self.get(parent_id) if parent_id is not None else None
        self._busy_add(parent_id)
        m = Mutable(self, sid, self._session_path(sid), parent, True)
        try:
            self._driver.init_mutable(m)
            with m.mount() as dest:
                apply(dest)  # mount() yields a Path
            changes = self._driver.commit_mutable(m)
        except BaseException:
            m.discard()  # (releases the parent too)
            raise
        m.done()
        try:
            self._publish_unpacked(sid, m.dir, changes)
        finally:
            self._unbusy(parent_id)
            m.parent = None

    def _pick_kind(self, wanted: str) -> str:
        have = self.db.get_meta("snapshotter")
        if have is not None:
            if wanted not in ("auto", have):
                raise SnapshotError(f"root {self.root} holds {have} snapshots; "
                                    f"it cannot be used with the {wanted} snapshotter")
            return have
        kind = wanted
        if kind == "auto":
            probe = self._session_path("probe")
            kind = "overlayfs" if overlay_works(probe) else "native"
            remove_tree(probe)
        with self.db.transaction() as c:
            c.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('snapshotter', ?)", (kind,))
        return kind

    def _cleanup(self) -> None:
        """Remove what dead processes left: their temporaries, mounts and session leases,
        and snapshot directories that never got a DB row (a commit killed mid-way)."""
        names = os.listdir(self.tmp_dir)
        for name in names:
            if not name.endswith(".lock"):
                continue
            lock = os.path.join(self.tmp_dir, name)
            sid = name[: -len(".lock")]
            if sid == self.session.id:
                continue
            fd = try_lock(lock)  # its session's process is dead
            if fd is None:
                continue
            try:
                self._reap_session(os.path.join(self.tmp_dir, sid), sid)
            except BaseException:
                os.close(fd)
                raise
            unlock_file(lock, fd)
        for name in os.listdir(self.tmp_dir):  # a session dir whose lock file is gone
            d = os.path.join(self.tmp_dir, name)
            if os.path.isdir(d) and not os.path.exists(f"{d}.lock"):
                self._reap_session(d, name)
        gone = [(s,) for (s,) in self.db.query("SELECT DISTINCT session FROM holds")
                if not os.path.exists(os.path.join(self.tmp_dir, f"{s}.lock"))]
        if gone:  # holds of sessions that ended on a full disk
            with self.db.transaction() as c:
                c.executemany("DELETE FROM holds WHERE session=?", gone)
        known = set(self.snapshot_ids())
        for name in os.listdir(self.snapshots_dir):
            if name not in known:
                d = os.path.join(self.snapshots_dir, name)
                for m in mounts_under(d):
                    unmount(m, lazy=True)
                remove_tree(d)

    def _reap_session(self, path: str | os.PathLike[str], session: str) -> None:
        """Unmount and remove a session's temporaries (which frees room on a full disk
        first); drop its holds (and the session leases older versions took). Holds a full
        disk kept from going are dropped by the next open (_cleanup: no lock file, no
        session)."""
        for m in mounts_under(path):
            try:
                unmount(m, lazy=True)
            except SnapshotError:
                pass
        remove_tree(path)
        try:
            with self.db.transaction() as c:
                c.execute("DELETE FROM holds WHERE session=?", (session,))
                c.execute("DELETE FROM leases WHERE holder=?", (f"session:{session}",))
        except NoSpaceError:
            pass


def _reraise(e: OSError, root: str) -> NoReturn:
    """Raise a full disk as NoSpaceError naming the root, any other OSError as it is."""
    if is_no_space(e):
        raise NoSpaceError.on("root", root) from e
    raise e

