"""The metadata DBs' syncing: a database a connection creates gets its first transaction (the
schema) with synchronous=OFF, every later one NORMAL; an existing one is NORMAL from the
start; a new database whose WAL was lost reopens with its schema made again."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from llb.snapshot import Store
from llb.snapshot.db import Database, MetaDB
from llb.solver.cachedb import CacheDB


def _synchronous(db: Database) -> int:
    return db.query("PRAGMA synchronous")[0][0]


def test_a_new_database_syncs_from_its_second_transaction(tmp_path: Path):
    db = Database(tmp_path / "x.db", 5)
    try:
        assert _synchronous(db) == 0  # OFF: nothing written yet
        with db.transaction() as c:
            c.execute("CREATE TABLE t (v)")
        assert _synchronous(db) == 1  # NORMAL
        with db.transaction() as c:
            c.execute("INSERT INTO t VALUES (1)")
        assert _synchronous(db) == 1
        assert db.query("PRAGMA journal_mode") == [("wal",)]
    finally:
        db.close()
    again = Database(tmp_path / "x.db", 5)
    try:
        assert _synchronous(again) == 1  # not new: NORMAL at once
        assert again.query("SELECT v FROM t") == [(1,)]
    finally:
        again.close()


def test_a_failed_first_transaction_still_leaves_the_connection_synced(tmp_path: Path):
    db = Database(tmp_path / "x.db", 5)
    try:
        try:
            with db.transaction() as c:
                c.execute("CREATE TABLE t (v)")
                raise RuntimeError("boom")
        except RuntimeError:
            pass
        assert _synchronous(db) == 1
        assert db.query("SELECT name FROM sqlite_master") == []  # rolled back
    finally:
        db.close()


def test_the_stores_databases_sync_after_their_schema(tmp_path: Path):
    meta = MetaDB(tmp_path / "metadata.db")
    cache = CacheDB(tmp_path)
    try:
        assert _synchronous(meta) == 1
        assert cache._db.query("PRAGMA synchronous") == [(1,)]
    finally:
        meta.close()
        cache.close()


def test_a_new_root_whose_wal_was_lost_opens_with_its_schema_again(tmp_path: Path):
    """What a power cut may leave of a root made and written by one process before any
    checkpoint: the database file as its WAL switch left it, no WAL."""
    root = tmp_path / "root"
    s = Store(root, "native")
    lost = tmp_path / "lost"
    lost.mkdir()
    # the files as they stand after the schema's transaction, before any checkpoint
    shutil.copy(root / "metadata.db", lost / "metadata.db")
    s.close()
    shutil.copy(lost / "metadata.db", root / "metadata.db")
    db = sqlite3.connect(root / "metadata.db")
    assert db.execute("SELECT count(*) FROM sqlite_master").fetchall() == [(0,)]  # no schema
    db.close()
    s = Store(root, "native")
    try:
        m = s.prepare(None)
        with m.mount() as p:
            (p / "f").write_text("x")
        ref = m.commit()
        with s.view(ref) as p:
            assert (p / "f").read_text() == "x"
    finally:
        s.close()
