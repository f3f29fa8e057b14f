"""The cache DB: sqlite (WAL) in the root mapping cache keys to committed snapshots.

records: cache key -> output snapshot ids (each leased in the store by "cache:<key>"),
created, last used, size, description. history: the latest key ingredients per vertex (for
--explain). checksums: memoised content checksums per (snapshot id, read spec)."""

from __future__ import annotations

import os
import sqlite3
import time

from llb import records
from llb.errors import LLBError, NoSpaceError, is_no_space
from llb.snapshot import Store
from llb.snapshot.db import Database, create_tables

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any, Iterable

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    key TEXT PRIMARY KEY, vertex TEXT NOT NULL, outputs TEXT NOT NULL,
    description TEXT NOT NULL, created REAL NOT NULL, last_used REAL NOT NULL,
    size INTEGER NOT NULL);
DROP INDEX IF EXISTS records_last_used;
CREATE TABLE IF NOT EXISTS history (
    vertex TEXT PRIMARY KEY, blanked TEXT NOT NULL, key TEXT NOT NULL,
    ingredients TEXT NOT NULL, time REAL NOT NULL);
CREATE INDEX IF NOT EXISTS history_blanked ON history(blanked);
CREATE TABLE IF NOT EXISTS filehashes (
    path TEXT PRIMARY KEY, stat TEXT NOT NULL, digest BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS checksums (
    snapshot TEXT NOT NULL, spec TEXT NOT NULL, checksum TEXT NOT NULL,
    PRIMARY KEY (snapshot, spec));
"""
_BATCH = 500
TOUCH_EVERY = 60.0  # seconds: a record's last_used is refreshed at most this often


class Record(records.Record):
    """One cache record (a named tuple: a class of its own costs start-up to create)."""

    key: str
    vertex: str
    outputs: tuple[str | None, ...]
    description: str
    created: float
    last_used: float
    size: int  # bytes; -1 until measured (fill_sizes)


def _encode_outputs(outputs: Iterable[str | None]) -> str:
    """Snapshot ids by output index, "-" for an empty result: "id1,-,id2"."""
    return ",".join(o if o is not None else "-" for o in outputs)


def _decode_outputs(text: str) -> tuple[str | None, ...]:
    if not text:
        return ()
    return tuple(None if o == "-" else o for o in text.split(","))


def lease_holder(key: str) -> str:
    """The store lease holder name of a cache record."""
    return "cache:" + key


class CacheDB:
    """Cache records in `<root>/solver/cache.db`; safe to share between threads."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = os.path.abspath(root)
        d = os.path.join(self.root, "solver")
        try:
            os.makedirs(d, exist_ok=True)
        except OSError as e:
            if is_no_space(e):
                raise NoSpaceError.on("root", self.root) from e
            raise
        self.path = os.path.join(d, "cache.db")
        self._stale: set[str] = set()
        self._db = Database(self.path, 30, root=self.root)
        try:
            for attempt in range(50):
                try:
                    with self._db.transaction() as c:
                        create_tables(c, _SCHEMA)
                        columns = {r[1] for r in c.execute("PRAGMA table_info(records)")}
                        if "measured" not in columns:  # a root made before sizes had stamps
                            c.execute("ALTER TABLE records ADD COLUMN measured TEXT NOT NULL"
                                      " DEFAULT ''")
                    break
                except sqlite3.OperationalError:  # another process creating it right now
                    if attempt == 49:
                        raise
                    time.sleep(0.05)
        except BaseException:
            self._db.close()
            raise

    @staticmethod
    def exists(root: str | os.PathLike[str]) -> bool:
        """Whether `root` holds a cache DB (without creating one)."""
        return os.path.exists(os.path.join(root, "solver", "cache.db"))

    def close(self) -> None:
        self._db.close()

    # ---------------------------------------------------------------- records

    def lookup_many(self, keys: Iterable[str]) -> dict[str, tuple[str | None, ...]]:
        """Outputs of every key that has a record, in as few queries as possible. Keys whose
        last use is older than TOUCH_EVERY are remembered for touch_stale()."""
        keys = list(keys)
        out: dict[str, tuple[str | None, ...]] = {}
        stale = time.time() - TOUCH_EVERY
        for i in range(0, len(keys), _BATCH):
            chunk = keys[i:i + _BATCH]
            q = ("SELECT key, outputs, last_used FROM records WHERE key IN (%s)"
                 % ",".join("?" * len(chunk)))
            for k, outs, used in self._db.query(q, chunk):
                out[k] = _decode_outputs(outs)
                if used < stale:
                    self._stale.add(k)
        return out

    def lookup(self, key: str) -> tuple[str | None, ...] | None:
        return self.lookup_many([key]).get(key)

    def add(self, store: Store, key: str, vertex: str, outputs: list[str | None],
            description: str, size: int, ingredients: dict[str, Any] | None = None) -> None:
        """Record `outputs` under `key`, leasing each snapshot in the store first; with
        `ingredients`, also remember them as the vertex's latest key (one transaction)."""
        holder = lease_holder(key)
        for sid in outputs:
            if sid is not None:
                store.lease(sid, holder)
        now = time.time()
        with self._db.transaction() as c:
            old = c.execute("SELECT outputs FROM records WHERE key=?", (key,)).fetchone()
            c.execute(
                "INSERT OR REPLACE INTO records(key, vertex, outputs, description, created,"
                " last_used, size) VALUES (?,?,?,?,?,?,?)",
                (key, vertex, _encode_outputs(outputs), description, now, now, size))
            if ingredients is not None:
                c.execute(
                    "INSERT OR REPLACE INTO history(vertex, blanked, key, ingredients, time)"
                    " VALUES (?,?,?,?,?)",
                    (vertex, ingredients["op"], key, _to_json(ingredients), now))
        if old:
            for sid in set(_decode_outputs(old[0])) - set(outputs):
                if sid is not None:
                    store.release(sid, holder)

    def touch_stale(self, keys: Iterable[str]) -> None:
        """Mark the given records used now, skipping those a lookup saw used recently (LRU
        order only needs minutes; rewriting 10,000 rows on every cached solve costs). On a
        full disk they wait for a later solve: a solve's outcome never hangs on its LRU."""
        try:
            self.touch_many([k for k in keys if k in self._stale])
        except NoSpaceError:
            pass

    def touch_many(self, keys: Iterable[str]) -> None:
        """Mark records as used now (one transaction)."""
        now = time.time()
        keys = list(keys)
        if not keys:
            return
        with self._db.transaction() as c:
            for i in range(0, len(keys), _BATCH):
                chunk = keys[i:i + _BATCH]
                c.execute("UPDATE records SET last_used=? WHERE key IN (%s)"
                          % ",".join("?" * len(chunk)), [now, *chunk])

    def records(self) -> list[Record]:
        """Every record, least recently used first."""
        rows = self._db.query(
            "SELECT key, vertex, outputs, description, created, last_used, size FROM records"
            " ORDER BY last_used, created")
        return [Record(r[0], r[1], _decode_outputs(r[2]), r[3], r[4], r[5], r[6]) for r in rows]

    def fill_sizes(self, store: Store, records: list[Record]) -> list[Record]:
        """Records with their sizes measured (store.usage) where not known yet, or where a
        snapshot's usage stamp changed since (a native tree taken by a child, a tree built
        again), stored back with the stamps they were measured at."""
        stamps = dict(self._db.query("SELECT key, measured FROM records"))
        out, updates = [], []
        for r in records:
            outputs = sorted({sid for sid in r.outputs if sid is not None})
            stamp = ",".join(_stamp(store, sid) for sid in outputs)
            if r.size < 0 or stamps.get(r.key) != stamp:
                size = 0
                for sid in outputs:
                    try:
                        size += store.usage(sid)
                    except LLBError:  # snapshot gone: nothing on disk
                        pass
                r = Record(r.key, r.vertex, r.outputs, r.description, r.created, r.last_used, size)
                updates.append((size, stamp, r.key))
            out.append(r)
        if updates:
            with self._db.transaction() as c:
                c.executemany("UPDATE records SET size=?, measured=? WHERE key=?", updates)
        return out

    def remove(self, store: Store, keys: Iterable[str]) -> int:
        """Delete records and release their leases; returns how many were removed."""
        n = 0
        for key in keys:
            with self._db.transaction() as c:  # one statement: a solve may replace it meanwhile
                row = c.execute("DELETE FROM records WHERE key=? RETURNING outputs",
                                (key,)).fetchone()
            if row is None:
                continue
            n += 1
            for sid in set(_decode_outputs(row[0])):
                if sid is not None:
                    try:
                        store.release(sid, lease_holder(key))
                    except Exception:  # already gone: nothing to release
                        pass
        return n

    # ---------------------------------------------------------------- explain history

    def history_many(self, vertices: Iterable[str]) -> dict[str, dict]:
        vertices = list(vertices)
        out = {}
        for i in range(0, len(vertices), _BATCH):
            chunk = vertices[i:i + _BATCH]
            q = "SELECT vertex, ingredients FROM history WHERE vertex IN (%s)" % ",".join("?" * len(chunk))
            for v, ing in self._db.query(q, chunk):
                out[v] = _from_json(ing)
        return out

    def history_by_blanked(self, blanked: str) -> dict | None:
        rows = self._db.query("SELECT ingredients FROM history WHERE blanked=?"
                          " ORDER BY time DESC LIMIT 1", (blanked,))
        return _from_json(rows[0][0]) if rows else None

    def put_history(self, vertex: str, key: str, ingredients: dict) -> None:
        with self._db.transaction() as c:
            c.execute("INSERT OR REPLACE INTO history(vertex, blanked, key, ingredients, time)"
                      " VALUES (?,?,?,?,?)",
                      (vertex, ingredients["op"], key, _to_json(ingredients), time.time()))

    # ---------------------------------------------------------------- checksum memo

    def checksum(self, snapshot: str, spec: str) -> str | None:
        rows = self._db.query("SELECT checksum FROM checksums WHERE snapshot=? AND spec=?",
                          (snapshot, spec))
        return rows[0][0] if rows else None

    def put_checksum(self, snapshot: str, spec: str, checksum: str) -> None:
        with self._db.transaction() as c:
            c.execute("INSERT OR REPLACE INTO checksums(snapshot, spec, checksum)"
                      " VALUES (?,?,?)", (snapshot, spec, checksum))

    def file_hashes(self, base: str) -> dict[str, tuple[str, bytes]]:
        """Memoised content digests of local files under `base`: path -> (stat id, digest).
        Paths that are not UTF-8 are never memoised (their digest is taken each time)."""
        if not _utf8(base):
            return {}
        lo = base.rstrip("/") + "/"
        hi = lo[:-1] + "0"  # "/" + 1
        rows = self._db.query("SELECT path, stat, digest FROM filehashes"
                          " WHERE path >= ? AND path < ?", (lo, hi))
        return {p: (st, d) for p, st, d in rows}

    def put_file_hashes(self, rows: list[tuple[str, str, bytes]]) -> None:
        rows = [r for r in rows if _utf8(r[0])]  # (see file_hashes)
        if not rows:
            return
        with self._db.transaction() as c:
            c.executemany("INSERT OR REPLACE INTO filehashes(path, stat, digest)"
                          " VALUES (?,?,?)", rows)

    def forget_checksums(self, keep: set[str]) -> None:
        """Drop memoised checksums of snapshots not in `keep`."""
        rows = self._db.query("SELECT DISTINCT snapshot FROM checksums")
        gone = [(s,) for (s,) in rows if s not in keep]
        if gone:
            with self._db.transaction() as c:
                c.executemany("DELETE FROM checksums WHERE snapshot=?", gone)


def _stamp(store: Store, sid: str) -> str:
    try:
        return store.usage_stamp(sid)
    except LLBError:
        return "gone"


def _to_json(value: dict) -> str:
    import json  # imported on use: a cached solve writes no history, and json costs start-up

    return json.dumps(value)


def _from_json(text: str) -> dict:
    import json

    return json.loads(text)


def _utf8(path: str) -> bool:
    """Whether SQLite's text can hold path (a name that is not UTF-8 has surrogate escapes)."""
    if path.isascii():
        return True
    try:
        path.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False
