"""`llb du` and `llb prune` on a root that `llb solve` filled."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from solvehelp import LLB, write

BUILD = '''
import llb

def build():
    small = llb.scratch().file(llb.mkfile("/small", b"s"))
    big = llb.scratch().file(llb.mkfile("/big", b"b" * 300000))
    return llb.merge([small, big])
'''


def _records(root: Path) -> list[tuple[str, float]]:
    db = sqlite3.connect(root / "solver" / "cache.db")
    rows = db.execute("SELECT description, last_used FROM records ORDER BY last_used").fetchall()
    db.close()
    return rows


def test_du_lists_records_with_sizes_and_descriptions(llb_root: LLB, tmp_path: Path):
    assert "Total:\t0B" in llb_root("du").text
    build = write(tmp_path / "build.py", BUILD)
    assert llb_root.solve(build).code == 0
    r = llb_root("du")
    assert r.code == 0
    lines = r.text.splitlines()
    assert lines[0].split() == ["ID", "SIZE", "LAST", "USED", "DESCRIPTION"]
    descs = {ln.split("  ")[-1].strip() for ln in lines[1:-1]}
    assert {"mkfile /small", "mkfile /big", "merge (2 inputs)", "scratch"} <= descs
    assert lines[-1].startswith("Total:") and "in 4 records" in lines[-1]
    big = [ln for ln in lines if ln.endswith("mkfile /big")][0]
    assert "kB" in big.split()[1]  # 300 kB file
    v = llb_root("du", "--verbose").text
    assert v.count("ID:\t") == 4 and "Description:\tmkfile /big" in v and "Snapshots:\t" in v


def test_prune_keep_storage_removes_least_recently_used_first(llb_root: LLB, tmp_path: Path):
    build = write(tmp_path / "build.py", BUILD)
    assert llb_root.solve(build).code == 0
    snaps_before = len(list((llb_root.root / "snapshots").iterdir()))
    # make "mkfile /big" the least recently used record
    db = sqlite3.connect(llb_root.root / "solver" / "cache.db")
    db.execute("UPDATE records SET last_used = 1 WHERE description = 'mkfile /big'")
    db.commit()
    db.close()
    # records: big ~300 kB, the merge ~300 kB (it hardlinks big's file), small and scratch ~0
    r = llb_root("prune", "--keep-storage", "450kB")
    assert r.code == 0, r.stderr
    left = [d for d, _ in _records(llb_root.root)]
    assert "mkfile /big" not in left and "mkfile /small" in left
    assert "Removed 1 record" in r.text
    # the merge still hits, so the pruned "mkfile /big" need not run again (its result is
    # not needed) and no snapshot is added
    again = llb_root.solve(build)
    assert again.code == 0 and again.names("done") == []
    assert len(again.names("cached")) == 4
    assert "mkfile /big" not in [d for d, _ in _records(llb_root.root)]
    assert len(list((llb_root.root / "snapshots").iterdir())) <= snaps_before


def test_prune_default_keeps_recent_records_and_all_removes_everything(llb_root: LLB,
                                                                         tmp_path: Path):
    build = write(tmp_path / "build.py", BUILD)
    assert llb_root.solve(build).code == 0
    r = llb_root("prune")
    assert r.code == 0 and "Removed 0 records" in r.text and len(_records(llb_root.root)) == 4
    db = sqlite3.connect(llb_root.root / "solver" / "cache.db")
    db.execute("UPDATE records SET last_used = ? WHERE description = 'mkfile /small'",
               (time.time() - 3 * 86400,))
    db.commit()
    db.close()
    r = llb_root("prune")
    assert "Removed 1 record" in r.text and len(_records(llb_root.root)) == 3
    r = llb_root("prune", "--all")
    assert r.code == 0 and _records(llb_root.root) == []
    assert list((llb_root.root / "snapshots").iterdir()) == []
    assert "reclaimed" in r.text and "0B reclaimed" not in r.text
    again = llb_root.solve(build)
    assert again.code == 0 and set(again.terminal().values()) == {"done"}


def test_prune_rejects_a_bad_size(llb_root: LLB):
    r = llb_root("prune", "--keep-storage", "10XB")
    assert r.code == 2 and r.stderr.strip() == "error: bad size '10XB' (examples: 500MB, 2GiB, 1048576)"


def test_prune_reclaims_a_result_leased_by_a_solve_that_died_before_recording_it(
        llb_root: LLB, tmp_path: Path):
    from llb.snapshot import Store

    store = Store(llb_root.root, llb_root.snapshotter)
    m = store.prepare(None)
    with m.mount() as p:
        (p / "orphan").write_text("x")
    ref = m.commit()
    store.lease(ref.id, "cache:sha256:" + "0" * 64)  # leased, never recorded
    sid = ref.id
    del ref
    store.close()
    r = llb_root("prune", "--all")
    assert r.code == 0, r.stderr
    assert not (llb_root.root / "snapshots" / sid).exists()
