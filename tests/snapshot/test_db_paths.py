"""Paths in the metadata DBs are bytes, kept losslessly: a name that is not UTF-8 is stored
as a BLOB of its raw bytes (UTF-8 names stay TEXT, as every root written before holds)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

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
    root = store.root
    kind = store.kind
    store.close()
    db = sqlite3.connect(root / "metadata.db")
    stored = dict(db.execute("SELECT path, typeof(path) FROM changes").fetchall())
    db.close()
    assert stored[b"caf\xe9"] == "blob" and stored["café"] == "text"
    again = Store(root, kind)
    try:
        merged = again.merge([again.get(ref.id), None])
        with again.view(merged) as p:
            assert open(os.fsencode(p) + b"/caf\xe9", "rb").read() == b"caf\xe9"
            assert sorted(os.listdir(os.fsencode(p))) == sorted([b"caf\xe9", b"d\xff",
                                                                 "café".encode()])
    finally:
        again.close()


def test_a_root_written_with_text_paths_still_reads(tmp_path: Path):
    s = Store(tmp_path / "root", "native")
    m = s.prepare(None)
    with m.mount() as p:
        (p / "plain").write_text("x")
    ref = m.commit()
    s.close()
    db = sqlite3.connect(tmp_path / "root" / "metadata.db")
    assert db.execute("SELECT typeof(path) FROM changes").fetchall() == [("text",)]
    db.close()
    s = Store(tmp_path / "root", "native")
    try:
        assert s.get(ref.id).layer_chain()[0].changes() == [Change("plain", "add")]
    finally:
        s.close()


def test_file_hash_memo_skips_names_it_cannot_store_and_leaves_no_transaction(tmp_path):
    db = CacheDB(tmp_path)
    db.put_file_hashes([(f"/ctx/{LATIN}", "id", b"d1"), ("/ctx/ok", "id", b"d2")])
    assert db.file_hashes("/ctx") == {"/ctx/ok": ("id", b"d2")}
    assert db.file_hashes(f"/{LATIN}") == {}
    db.put_file_hashes([("/ctx/more", "id", b"d3")])  # a transaction left open would fail
    assert len(db.file_hashes("/ctx")) == 2
