"""The metadata DB: one sqlite file per root (WAL, every change in a transaction) holding
snapshots, their dependencies, recorded diffs and leases."""

from __future__ import annotations

import errno
import os
import sqlite3
import threading
import time
from contextlib import contextmanager

from llb.errors import NoSpaceError, is_no_space
from llb.snapshot.blobs import BlobRecord
from llb.snapshot.errors import SnapshotError
from llb.snapshot.layers import Change, change_key
from llb.snapshot.space import MIN_FREE, free_bytes

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from typing import Any, Iterable, Iterator, Sequence

    from llb.snapshot.layers import ChangeKind

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS snapshots (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,          -- layer | merge | diff | tail
    parent TEXT,                 -- layer: the snapshot it was prepared on
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS inputs (      -- merge: input snapshot ids, diff: layer ids, tail: lower, upper
    id TEXT NOT NULL, pos INTEGER NOT NULL, input TEXT NOT NULL,
    PRIMARY KEY (id, pos)
);
CREATE INDEX IF NOT EXISTS inputs_input ON inputs (input);
CREATE INDEX IF NOT EXISTS snapshots_parent ON snapshots (parent);
CREATE TABLE IF NOT EXISTS changes (   -- path: a file name is bytes, not text: TEXT where
    layer TEXT NOT NULL, seq INTEGER NOT NULL, -- it is UTF-8, else a BLOB of its raw bytes
    path TEXT NOT NULL, kind TEXT NOT NULL,    -- (roots written before hold TEXT only)
    PRIMARY KEY (layer, seq)                   -- read only: what roots written before hold
);
CREATE TABLE IF NOT EXISTS diffs (     -- a layer's recorded diff in one row: its paths'
    layer TEXT PRIMARY KEY,            -- raw bytes joined by NULs (a name holds none), and
    paths BLOB NOT NULL,               -- their kinds, one letter each (a, m, d), in order
    kinds TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS leases (
    id TEXT NOT NULL, holder TEXT NOT NULL, PRIMARY KEY (id, holder)
);
CREATE TABLE IF NOT EXISTS holds (       -- what a live process uses: comma-separated ids
    session TEXT NOT NULL, ids TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS holds_session ON holds (session);
CREATE TABLE IF NOT EXISTS blobs (       -- a layer's blobs: "" the one it was pulled as,
    layer TEXT NOT NULL, variant TEXT NOT NULL,   -- else one packed per compression/epoch
    digest TEXT NOT NULL, size INTEGER NOT NULL, media_type TEXT NOT NULL,
    diff_id TEXT NOT NULL, PRIMARY KEY (layer, variant)
);
CREATE INDEX IF NOT EXISTS blobs_digest ON blobs (digest);
CREATE TABLE IF NOT EXISTS pulled (      -- layers from images: where to read their blob,
    id TEXT PRIMARY KEY, origin TEXT NOT NULL,    -- digests GC keeps for them (manifest,
    keep TEXT NOT NULL, lazy INTEGER NOT NULL     -- config), and whether still unpacked
);
CREATE INDEX IF NOT EXISTS pulled_lazy ON pulled (lazy);
"""
# a snapshot's row and its ancestors' through layer parents, nearest first (see lineage)
_LINEAGE = """
WITH RECURSIVE line(id, kind, parent, n) AS (
    SELECT id, kind, parent, 0 FROM snapshots WHERE id=?
    UNION ALL
    SELECT s.id, s.kind, s.parent, line.n + 1 FROM snapshots s, line
    WHERE line.kind = 'layer' AND s.id = line.parent
)
SELECT id, kind, parent FROM line ORDER BY n"""
GENERATION = "generation"  # meta key: bumped by every removal of snapshots
_SQLITE_IOERR = 10


SHM_PREALLOC = 128 * 1024  # bytes of the -shm file allocated up front (a WAL of 16k pages)
_PAGE = os.sysconf("SC_PAGE_SIZE")


def connect(path: str | os.PathLike[str], timeout: float, *,
            root: str | os.PathLike[str] | None = None,
            keep_new_unsynced: bool = False) -> tuple[sqlite3.Connection, bool]:
    """A connection in WAL mode (synchronous=NORMAL, busy timeout `timeout` seconds),
    autocommit, usable from any thread, and whether it switched the database to WAL (a new
    database). Two processes opening a new database at once can both find it in rollback
    mode, and SQLite fails one's switch to WAL at once ("database is locked") without
    waiting: that switch is retried for up to `timeout`.

    keep_new_unsynced: a connection that switched the database is left at synchronous=OFF
    for its caller's first transaction (the schema; see Database).

    On a full disk this is a NoSpaceError naming `root` (default: the database's directory),
    never SIGBUS: nothing is opened with less than MIN_FREE free, and the blocks of the
    WAL index SQLite maps into memory are allocated before any use (see llb.snapshot.space)."""
    path = os.fspath(path)
    parent = os.path.dirname(path) or "."
    place = parent if root is None else os.fspath(root)
    if free_bytes(parent) < MIN_FREE:
        raise NoSpaceError.on("root", place)
    try:
        conn = sqlite3.connect(path, timeout=timeout, isolation_level=None,
                               check_same_thread=False)
    except sqlite3.Error as e:
        raise translate(e, place) from e
    try:
        deadline = time.monotonic() + timeout
        # the switch of a new database to WAL writes its first page through a rollback
        # journal, synced four times (journal twice, its directory, the database): not for
        # an empty database, whose loss to a power cut leaves it empty, as losing the
        # commits made since (not synced before the first checkpoint) leaves it anyway
        conn.execute("PRAGMA synchronous=OFF")
        new = conn.execute("PRAGMA journal_mode").fetchall() != [("wal",)]
        while new:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        if not (new and keep_new_unsynced):
            conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchall()  # maps the WAL index
        _allocate_shm(f"{path}-shm")
    except BaseException as e:
        conn.close()
        if isinstance(e, sqlite3.Error):
            raise translate(e, place) from e
        if isinstance(e, OSError) and is_no_space(e):
            raise NoSpaceError.on("root", place) from e
        raise
    return conn, new


def _allocate_shm(shm: str) -> None:
    """Give the WAL index's first SHM_PREALLOC bytes real blocks (its size unchanged):
    SQLite extends it by writing one byte per page, which leaves holes where a block is
    smaller than a page, and a store into a hole of a full disk is SIGBUS.

    Only where that can happen (shm_needs_blocks): on a block device's filesystem whose
    blocks are a page or more, SQLite's one byte per page leaves no hole, and the cached
    solve that opens the databases loads no ctypes for the call (llb.snapshot.libc).

    Through SQLite's own descriptor of the file (found in /proc/self/fd): opening and
    closing one of ours would drop every POSIX lock this process holds on the file,
    SQLite's too, and another process would then take the index for unused and truncate
    it under our mapping (SIGBUS as well)."""
    try:
        if not shm_needs_blocks(shm):
            return
    except FileNotFoundError:  # not in WAL mode after all
        return
    target = os.path.realpath(shm)
    fd = None
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}") == target:
                fd = int(name)
                break
        except OSError:
            continue
    if fd is None:  # not in WAL mode after all
        return
    from llb.snapshot import libc  # ctypes, only where a hole can be left (see above)

    try:
        libc.fallocate_keep_size(fd, SHM_PREALLOC)
    except OSError as e:
        if e.errno in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EBADF):
            return
        raise OSError(e.errno, e.strerror, str(shm)) from None


def shm_needs_blocks(shm: str | os.PathLike[str]) -> bool:
    """Whether the WAL index `shm` must have its blocks allocated up front: its blocks are
    smaller than a page, or its filesystem has no block device of its own (an anonymous
    device number: btrfs and other copy-on-write ones, tmpfs, overlayfs, NFS), where a
    written page is no promise that a later store into it finds a block."""
    return os.major(os.stat(shm).st_dev) == 0 or os.statvfs(shm).f_frsize < _PAGE


def translate(e: sqlite3.Error, root: str | os.PathLike[str]) -> BaseException:
    """The error to raise for a failed database call: NoSpaceError naming `root` when the
    disk is full (SQLite says so, or says "disk I/O error" with almost nothing free), else
    `e` itself."""
    if is_no_space(e):
        return NoSpaceError.on("root", root)
    code = getattr(e, "sqlite_errorcode", None)
    if isinstance(code, int) and code & 0xFF == _SQLITE_IOERR:
        try:
            if free_bytes(root) < MIN_FREE:
                return NoSpaceError.on("root", root)
        except OSError:
            pass
    return e


@contextmanager
def write_transaction(conn: sqlite3.Connection, root: str | os.PathLike[str]) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT on `conn` (the caller serialises its threads), rolled back
    on any exception; database errors come out through translate(). A transaction an
    interrupted caller left open (a signal between BEGIN and the body) is rolled back
    first; a failed COMMIT that SQLite already rolled back is not rolled back twice."""
    try:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            raise
    except sqlite3.Error as e:
        err = translate(e, root)
        if err is e:
            raise
        raise err from e


class Row:
    """One snapshot row."""

    __slots__ = ("id", "kind", "parent")

    def __init__(self, sid: str, kind: str, parent: str | None):
        self.id, self.kind, self.parent = sid, kind, parent


def create_tables(c: sqlite3.Connection, schema: str) -> None:
    """Run the `;`-separated CREATE ... IF NOT EXISTS statements of `schema`."""
    for stmt in schema.split(";"):
        if stmt.strip():
            c.execute(stmt)


class Database:
    """One SQLite connection (see connect) shared by a process's threads: reads through
    query(), writes through transaction(); errors come out translated (a full disk names
    `root`).

    The first transaction on a database this connection created (its schema) runs with
    synchronous=OFF: it starts the WAL, whose header SQLite would otherwise sync, and the
    WAL's directory with it (2 of the 8 fdatasyncs of a cold solve on a new root). Lost to
    a power cut, the WAL leaves the database as new (its schema is created again at the
    next open), as losing the commits after it, never synced before a checkpoint in WAL's
    NORMAL mode, does anyway; and a new WAL has no older frames a torn write could revive.
    Every later transaction runs with synchronous=NORMAL."""

    def __init__(self, path: str | os.PathLike[str], timeout: float,
                 root: str | os.PathLike[str] | None = None):
        self._lock = threading.RLock()
        self.root = (os.path.dirname(os.fspath(path)) or ".") if root is None else os.fspath(root)
        self._conn, self._unsynced = connect(path, timeout, root=root, keep_new_unsynced=True)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception (write_transaction)."""
        with self._lock:
            try:
                with write_transaction(self._conn, self.root) as c:
                    yield c
            finally:
                if self._unsynced:
                    self._unsynced = False
                    self._synced()

    def _synced(self) -> None:
        """synchronous=NORMAL from now on (see the class docstring)."""
        try:
            self._conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as e:
            err = translate(e, self.root)
            if err is e:
                raise
            raise err from e

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        """All rows of one read."""
        with self._lock:
            try:
                return self._conn.execute(sql, args).fetchall()
            except sqlite3.Error as e:
                err = translate(e, self.root)
                if err is e:
                    raise
                raise err from e

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class MetaDB(Database):
    """Thread-safe access to the metadata DB; writes go through `transaction()`."""

    def __init__(self, path: str | os.PathLike[str]):
        super().__init__(path, 60)
        try:
            with self.transaction() as c:
                create_tables(c, _SCHEMA)
        except BaseException:
            self.close()
            raise

    # ---- reads

    def get_meta(self, key: str) -> str | None:
        rows = self.query("SELECT value FROM meta WHERE key=?", (key,))
        return rows[0][0] if rows else None

    def row(self, sid: str) -> Row | None:
        rows = self.query("SELECT id, kind, parent FROM snapshots WHERE id=?", (sid,))
        return Row(*rows[0]) if rows else None

    def lineage(self, sid: str) -> list[Row]:
        """sid's row, then its parent's, and so on while a row is a layer's: a chain of n
        layers in one query rather than n (empty when sid has no row)."""
        return [Row(*r) for r in self.query(_LINEAGE, (sid,))]

    def all_rows(self) -> list[Row]:
        return [Row(*r) for r in self.query("SELECT id, kind, parent FROM snapshots")]

    def inputs(self, sid: str) -> list[str]:
        return [r[0] for r in self.query(
            "SELECT input FROM inputs WHERE id=? ORDER BY pos", (sid,))]

    def changes(self, layer: str) -> list[Change]:
        """The layer's recorded diff, in its recorded order (by path_key)."""
        rows = self.query("SELECT paths, kinds FROM diffs WHERE layer=?", (layer,))
        if rows:
            return unpack_changes(*rows[0])
        return [Change(p if isinstance(p, str) else os.fsdecode(p), k) for p, k in self.query(
            "SELECT path, kind FROM changes WHERE layer=? ORDER BY seq", (layer,))]

    def leased(self) -> set[str]:
        return {r[0] for r in self.query("SELECT DISTINCT id FROM leases")}

    def held(self, exclude: str | None = None) -> set[str]:
        """Snapshot ids the sessions (other than `exclude`) hold."""
        out: set[str] = set()
        for (ids,) in self.query("SELECT ids FROM holds WHERE session IS NOT ?", (exclude,)):
            out.update(ids.split(","))
        return out

    def existing(self, ids: Iterable[str]) -> set[str]:
        """Which of these snapshot ids have a row."""
        return self._ids_among("SELECT id FROM snapshots WHERE id IN", ids)

    def generation(self) -> int:
        """How many times snapshots were removed (so a reader can tell nothing went since)."""
        value = self.get_meta(GENERATION)
        return int(value) if value is not None else 0

    def holders(self, sid: str) -> list[str]:
        return [r[0] for r in self.query("SELECT holder FROM leases WHERE id=?", (sid,))]

    def dependents(self, sid: str) -> list[str]:
        return [r[0] for r in self.query(
            "SELECT id FROM snapshots WHERE parent=? UNION SELECT id FROM inputs WHERE input=?",
            (sid, sid))]

    def blob(self, layer: str, variant: str) -> BlobRecord | None:
        rows = self.query("SELECT digest, size, media_type, diff_id FROM blobs WHERE layer=? "
                          "AND variant=?", (layer, variant))
        return BlobRecord(*rows[0]) if rows else None

    def pulled(self, sid: str) -> tuple[str, list[str], bool] | None:
        """(origin, keep digests, lazy) of a layer that came from an image."""
        rows = self.query("SELECT origin, keep, lazy FROM pulled WHERE id=?", (sid,))
        if not rows:
            return None
        origin, keep, lazy = rows[0]
        return origin, keep.split(), bool(lazy)

    def lazy_among(self, ids: Sequence[str]) -> set[str]:
        """The ids among these that are lazy (pulled, not unpacked yet)."""
        return self._ids_among("SELECT id FROM pulled WHERE lazy=1 AND id IN", ids)

    def _ids_among(self, select: str, ids: Iterable[str]) -> set[str]:
        """The ids `select ... IN (ids)` returns, asked 500 at a time (SQLite's limit on
        host parameters)."""
        out: set[str] = set()
        ids = list(ids)
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            out.update(r[0] for r in self.query(
                "%s (%s)" % (select, ",".join("?" * len(chunk))), tuple(chunk)))
        return out

    def pulled_layer(self, parent: str | None, digest: str) -> str | None:
        """A pulled layer on `parent` whose blob is `digest`, if there is one."""
        rows = self.query(
            "SELECT s.id FROM snapshots s JOIN blobs b ON b.layer = s.id AND b.variant = '' "
            "JOIN pulled p ON p.id = s.id WHERE b.digest=? AND s.parent IS ? LIMIT 1",
            (digest, parent))
        return rows[0][0] if rows else None

    def kept_digests(self) -> set[str]:
        """Every blob digest the snapshots reference: their blobs and their `keep` lists."""
        out = {r[0] for r in self.query("SELECT DISTINCT digest FROM blobs")}
        for (keep,) in self.query("SELECT keep FROM pulled"):
            out.update(keep.split())
        return out

    # ---- writes (call inside transaction())

    @staticmethod
    def add_changes(c: sqlite3.Connection, sid: str, changes: list[Change]) -> list[Change]:
        """Record a layer's changes; returns them in their recorded order (by path_key),
        as changes() reads them back."""
        ordered = sorted(changes, key=change_key)
        c.execute("INSERT INTO diffs (layer, paths, kinds) VALUES (?,?,?)",
                  (sid, *pack_changes(ordered)))
        return ordered

    @staticmethod
    def set_blob(c: sqlite3.Connection, layer: str, variant: str, rec: BlobRecord) -> None:
        c.execute("INSERT OR REPLACE INTO blobs (layer, variant, digest, size, media_type, "
                  "diff_id) VALUES (?,?,?,?,?,?)", (layer, variant, *rec))

    @staticmethod
    def insert(c: sqlite3.Connection, sid: str, kind: str, parent: str | None, created: float,
               inputs: Sequence[str] = (), changes: list[Change] | None = None
               ) -> list[Change] | None:
        """The snapshot's row, its inputs and its changes; returns the changes as recorded
        (add_changes), None without."""
        c.execute("INSERT INTO snapshots (id, kind, parent, created) VALUES (?,?,?,?)",
                  (sid, kind, parent, created))
        c.executemany("INSERT INTO inputs (id, pos, input) VALUES (?,?,?)",
                      [(sid, i, x) for i, x in enumerate(inputs)])
        if changes is None:
            return None
        return MetaDB.add_changes(c, sid, changes)

    @staticmethod
    def hold(c: sqlite3.Connection, session: str, ids: Sequence[str]) -> None:
        """Record that `session` uses these snapshots (one row, however many ids)."""
        if ids:
            c.execute("INSERT INTO holds (session, ids) VALUES (?, ?)", (session, ",".join(ids)))

    @staticmethod
    def bump_generation(c: sqlite3.Connection) -> None:
        c.execute("INSERT INTO meta (key, value) VALUES (?, '1') ON CONFLICT(key) DO UPDATE"
                  " SET value = CAST(value AS INTEGER) + 1", (GENERATION,))

    @staticmethod
    def delete(c: sqlite3.Connection, sid: str) -> None:
        for table, col in (("snapshots", "id"), ("inputs", "id"), ("changes", "layer"),
                           ("diffs", "layer"),
                           ("leases", "id"), ("blobs", "layer"), ("pulled", "id")):
            c.execute(f"DELETE FROM {table} WHERE {col}=?", (sid,))


_KIND_LETTER: dict[ChangeKind, str] = {"add": "a", "modify": "m", "delete": "d"}
_LETTER_KIND: dict[str, ChangeKind] = {"a": "add", "m": "modify", "d": "delete"}


def pack_changes(changes: list[Change]) -> tuple[bytes, str]:
    """A diff as its row in `diffs`: the paths' raw bytes (a name that is not UTF-8 is a
    str with surrogate escapes, as os.listdir gives it) joined by NULs, and the kinds'
    letters. One row, not one per change: a row cost SQLite ~16k instructions to insert."""
    joined = "\0".join([ch.path for ch in changes])
    if joined.count("\0") != max(len(changes) - 1, 0):
        bad = next(ch.path for ch in changes if "\0" in ch.path)
        raise SnapshotError(f"change path {bad!r} is not a file name", path=bad)
    kinds = "".join([_KIND_LETTER[ch.kind] for ch in changes])
    return joined.encode("utf-8", "surrogateescape"), kinds


def unpack_changes(paths: bytes, kinds: str) -> list[Change]:
    """The changes a `diffs` row holds (pack_changes)."""
    if not kinds:
        return []
    names = paths.decode("utf-8", "surrogateescape").split("\0")
    letter = _LETTER_KIND
    return [Change(p, letter[k]) for p, k in zip(names, kinds, strict=True)]
