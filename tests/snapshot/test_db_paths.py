"""Paths in the metadata DBs are bytes, kept losslessly: a layer's diff is one row of its
paths' raw bytes (a name that is not UTF-8 too); roots written before, one row per change
(a name TEXT where it is UTF-8, else a BLOB), still read."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from llb.snapshot import Store
from llb.snapshot.layers import Change
from llb.solver.cachedb import CacheDB

LATIN = os.fsdecode(b"caf\xe9")  # a str with a surrogate escape, as os.listdir gives it


def test_changes_with_names_that_are_not_utf8_round_trip_through_the_db(store, tmp_path):
    m = store.prepare(None)
    with m.mount() as p:
        os.mkdir(os.fsencode(p) + b"/d\xff")
        for name in (b"caf\xe9", b"d\xff/x", "café".encode()):
            with open(os.fsencode(p) + b"/" + name, "wb") as f:
                f.write(name)
    ref = m.commit()
    want = sorted([LATIN, os.fsdecode(b"d\xff"), os.fsdecode(b"d\xff/x"), "café"])
    assert sorted(c.path for c in ref.layer_chain()[0].changes()) == want
    root = Path(store.root)
    kind = store.kind
    store.close()
    db = sqlite3.connect(root / "metadata.db")
    (paths, kinds), = db.execute("SELECT paths, kinds FROM diffs WHERE layer=?",
                                 (ref.id,)).fetchall()
    assert db.execute("SELECT count(*) FROM changes").fetchall() == [(0,)]
    db.close()
    assert sorted(paths.split(b"\0")) == sorted([b"caf\xe9", b"d\xff", b"d\xff/x",
                                                 "café".encode()])
    assert kinds == "aaaa"
    again = Store(root, kind)
    try:
        merged = again.merge([again.get(ref.id), None])
        with again.view(merged) as p:
            assert open(os.fsencode(p) + b"/caf\xe9", "rb").read() == b"caf\xe9"
            assert sorted(os.listdir(os.fsencode(p))) == sorted([b"caf\xe9", b"d\xff",
                                                                 "café".encode()])
    finally:
        again.close()


def test_a_root_written_with_a_row_per_change_still_reads(tmp_path: Path):
    """Roots written before the diffs table: one `changes` row per change, a path TEXT
    where it is UTF-8, else a BLOB; read back in seq order, merged, and removed with their
    layer."""
    s = Store(tmp_path / "root", "native")
    m = s.prepare(None)
    with m.mount() as p:
        os.mkdir(p / "d")
        (p / "d" / "plain").write_text("x")
        with open(os.fsencode(p) + b"/caf\xe9", "wb") as f:
            f.write(b"latin")
    ref = m.commit()
    want = ref.layer_chain()[0].changes()
    assert [c.path for c in want] == [LATIN, "d", "d/plain"]
    s.close()
    db = sqlite3.connect(tmp_path / "root" / "metadata.db")
    with db:  # rewritten as a root written before holds it
        db.execute("DELETE FROM diffs")
        db.executemany("INSERT INTO changes (layer, seq, path, kind) VALUES (?,?,?,?)",
                       [(ref.id, 0, b"caf\xe9", "add"), (ref.id, 1, "d", "add"),
                        (ref.id, 2, "d/plain", "add")])
    db.close()
    s = Store(tmp_path / "root", "native")
    try:
        assert s.get(ref.id).layer_chain()[0].changes() == want
        merged = s.merge([s.get(ref.id), None])
        with s.view(merged) as p:
            assert (p / "d" / "plain").read_text() == "x"
            assert open(os.fsencode(p) + b"/caf\xe9", "rb").read() == b"latin"
    finally:
        s.close()


def test_pack_changes_round_trips_and_refuses_a_nul(tmp_path: Path):
    from llb.snapshot.db import pack_changes, unpack_changes
    from llb.snapshot.errors import SnapshotError

    changes = [Change("", "add"), Change("a", "modify"), Change(LATIN, "delete"),
               Change("a/\u00e9\u4e2d", "add")]
    paths, kinds = pack_changes(changes)
    assert kinds == "amda"
    assert paths == b"\0a\0caf\xe9\0a/" + "\u00e9\u4e2d".encode()
    assert unpack_changes(paths, kinds) == changes
    assert pack_changes([]) == (b"", "")
    assert unpack_changes(b"", "") == []
    with pytest.raises(SnapshotError, match="not a file name"):
        pack_changes([Change("a", "add"), Change("b\0c", "add")])


def test_file_hash_memo_skips_names_it_cannot_store_and_leaves_no_transaction(tmp_path):
    db = CacheDB(tmp_path)
    db.put_file_hashes([(f"/ctx/{LATIN}", "id", b"d1"), ("/ctx/ok", "id", b"d2")])
    assert db.file_hashes("/ctx") == {"/ctx/ok": ("id", b"d2")}
    assert db.file_hashes(f"/{LATIN}") == {}
    db.put_file_hashes([("/ctx/more", "id", b"d3")])  # a transaction left open would fail
    assert len(db.file_hashes("/ctx")) == 2
