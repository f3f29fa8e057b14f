"""Store basics on both snapshotters: prepare/mount/commit/view, persistence, errors,
leases and prune."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from treehelp import commit_tree, read_tree
from llb.snapshot import NotFoundError, Ref, SnapshotError, Store
from llb.snapshot.layers import Change


def test_commit_and_view_full_tree(store):
    a = commit_tree(store, None, {"etc/conf": b"v1", "bin/tool": b"#!", "link": "->etc/conf"})
    b = commit_tree(store, a, {"etc/conf": b"v2", "new.txt": b"n"}, delete=("bin/tool",))
    with store.view(a) as p:
        assert read_tree(p) == {"etc": None, "bin": None, "etc/conf": b"v1", "bin/tool": b"#!",
                                "link": "->etc/conf"}
    with store.view(b) as p:
        assert read_tree(p) == {"etc": None, "bin": None, "etc/conf": b"v2", "new.txt": b"n",
                                "link": "->etc/conf"}
    assert store.kind in ("overlayfs", "native")


def test_mutable_mount_shows_parent_and_is_writable(store):
    a = commit_tree(store, None, {"x": b"1"})
    m = store.prepare(a)
    with m.mount() as p:
        assert (p / "x").read_bytes() == b"1"
        (p / "x").write_bytes(b"changed")
    with m.mount() as p:
        assert (p / "x").read_bytes() == b"changed"
    b = m.commit()
    with store.view(a) as p:
        assert (p / "x").read_bytes() == b"1"  # the parent is untouched
    with store.view(b) as p:
        assert (p / "x").read_bytes() == b"changed"
    assert [c for c in b.layer_chain()[-1].changes()] == [Change("x", "modify")]


def test_recorded_diff_kinds_and_order(store):
    a = commit_tree(store, None, {"d/keep": b"k", "d/old": b"o", "z": b"z", "gone/sub/f": b"f"})
    b = commit_tree(store, a, {"d/new": b"n", "z": b"zz", "a-b": b"1", "d-x/y": b"2"},
                    delete=("d/old", "gone"))
    changes = b.layer_chain()[-1].changes()
    # d itself changed only its mtime: not a change (BuildKit's differs agree)
    assert changes == [
        Change("a-b", "add"), Change("d/new", "add"),
        Change("d/old", "delete"), Change("d-x", "add"), Change("d-x/y", "add"),
        Change("gone", "delete"), Change("z", "modify"),
    ]
    assert b.layer_chain()[-1].path("d/new").read_bytes() == b"n"


def test_layer_chain_of_plain_snapshots(store):
    a = commit_tree(store, None, {"a": b"1"})
    b = commit_tree(store, a, {"b": b"2"})
    c = commit_tree(store, b, {"c": b"3"})
    assert [l.id for l in c.layer_chain()] == [a.id, b.id, c.id]
    assert [l.id for l in a.layer_chain()] == [a.id]
    assert c.layer_chain()[0].path("a").read_bytes() == b"1"


def test_diff_records_survive_reopen(store, tmp_path):
    a = commit_tree(store, None, {"a/x": b"1", "b": b"2"})
    b = commit_tree(store, a, {"a/y": b"3"}, delete=("b",))
    want = [(l.id, l.changes()) for l in b.layer_chain()]
    root, kind = store.root, store.kind
    store.close()
    with Store(root) as again:
        assert again.kind == kind
        ref = again.get(b.id)
        assert [(l.id, l.changes()) for l in ref.layer_chain()] == want
        with again.view(ref) as p:
            assert read_tree(p) == {"a": None, "a/x": b"1", "a/y": b"3"}


def test_unknown_and_removed_snapshots_raise(store):
    with pytest.raises(NotFoundError, match="not found"):
        store.get("nope")
    a = commit_tree(store, None, {"a": b"1"})
    aid = a.id
    freed = store.remove(aid)
    assert freed > 0
    assert not (Path(store.root) / "snapshots" / aid).exists()
    for call in (lambda: store.get(aid), lambda: a.layer_chain(), lambda: store.prepare(a),
                 lambda: store.lease(aid, "x"), lambda: store.usage(aid)):
        with pytest.raises(NotFoundError):
            call()
    with pytest.raises(NotFoundError):
        with store.view(a):
            pass
    err = NotFoundError("snapshot x not found", path="x")
    assert err.exit_code == 2 and "\n" not in str(err)


def test_remove_refuses_leased_and_depended_on(store):
    a = commit_tree(store, None, {"a": b"1"})
    b = commit_tree(store, a, {"b": b"1"})
    with pytest.raises(SnapshotError, match="dependents"):
        store.remove(a.id)
    store.lease(b.id, "cache")
    with pytest.raises(SnapshotError, match="leased"):
        store.remove(b.id)
    store.release(b.id, "cache")
    store.remove(b.id)
    store.remove(a.id)
    assert store.snapshot_ids() == []


def test_commit_twice_or_after_discard_fails(store):
    m = store.prepare(None)
    with m.mount() as p:
        (p / "f").write_bytes(b"x")
    m.commit()
    with pytest.raises(SnapshotError, match="already committed"):
        m.commit()
    m2 = store.prepare(None)
    with m2.mount() as p:
        (p / "g").write_bytes(b"x")
    d = m2.dir
    m2.discard()
    assert not d.exists()
    with pytest.raises(SnapshotError):
        m2.mount().__enter__()


def _prune_fixture(store):
    base = commit_tree(store, None, {"base": b"b" * 5000})
    kept = commit_tree(store, base, {"kept": b"k"})
    loose = commit_tree(store, None, {"loose": b"l" * 5000})
    return base.id, kept.id, loose.id


def test_prune_keeps_leased_and_their_dependencies(store):
    base, kept, loose = _prune_fixture(store)
    store.lease(kept, "cache")
    freed = store.prune()
    assert freed >= 4096
    assert sorted(store.snapshot_ids()) == sorted([base, kept])
    with store.view(store.get(kept)) as p:
        assert (p / "base").read_bytes() == b"b" * 5000
    assert sorted(r[0] for r in store.db.query("SELECT layer FROM diffs")) == sorted([base, kept])
    store.release(kept, "cache")
    store.prune()
    assert store.snapshot_ids() == []
    assert store.db.query("SELECT count(*) FROM diffs") == [(0,)]  # recorded diffs go too


def test_prune_keeps_live_refs(store):
    a = commit_tree(store, None, {"a": b"1"})
    b = commit_tree(store, a, {"b": b"1"})
    c = commit_tree(store, None, {"c": b"1"})
    cid = c.id
    del c
    store.prune()
    assert sorted(store.snapshot_ids()) == sorted([a.id, b.id])
    assert not store.exists(cid)


def test_prune_keeps_parent_of_open_mutable_and_views(store):
    a = commit_tree(store, None, {"a": b"1"})
    aid = a.id
    m = store.prepare(a)
    other = commit_tree(store, None, {"v": b"1"})
    oid = other.id
    del a
    with store.view(other) as p:
        del other
        store.prune()
        assert (p / "v").read_bytes() == b"1"
    assert sorted(store.snapshot_ids()) == sorted([aid, oid])
    with m.mount() as p:
        assert (p / "a").read_bytes() == b"1"
    m.discard()
    store.prune()
    assert store.snapshot_ids() == []


def test_leases_are_counted_per_holder(store):
    a = commit_tree(store, None, {"a": b"1"})
    aid = a.id
    del a
    store.lease(aid, "one")
    store.lease(aid, "two")
    store.lease(aid, "two")
    assert sorted(store.leases(aid)) == ["one", "two"]
    store.release(aid, "one")
    store.prune()
    assert store.exists(aid)
    store.release(aid, "two")
    store.prune()
    assert not store.exists(aid)


def test_usage_counts_own_bytes(store):
    a = commit_tree(store, None, {"big": os.urandom(64 * 1024)})
    b = commit_tree(store, a, {"small": b"s"})
    assert store.usage(a.id) >= 64 * 1024
    if store.kind == "overlayfs":
        assert store.usage(b.id) < 64 * 1024  # only its upperdir


def test_root_keeps_its_snapshotter(store):
    root, kind = Path(store.root), store.kind
    store.close()
    other = "native" if kind == "overlayfs" else "overlayfs"
    with pytest.raises(SnapshotError, match="cannot be used"):
        Store(root, snapshotter=other)
    with pytest.raises(SnapshotError, match="unknown snapshotter"):
        Store(root, snapshotter="zfs")
    assert os.listdir(root / "tmp") == []  # a refused open leaves nothing behind
    with pytest.raises(SnapshotError, match="closed"):
        store.get("x")


def test_ref_equality_and_get(store):
    a = commit_tree(store, None, {"a": b"1"})
    assert store.get(a.id) == a
    assert isinstance(a, Ref) and hash(store.get(a.id)) == hash(a)


def test_empty_mutable_commit_is_a_snapshot(store):
    m = store.prepare(None)
    ref = m.commit()
    assert ref.layer_chain()[0].changes() == []
    with store.view(ref) as p:
        assert list(Path(p).iterdir()) == []


def test_threads_share_a_store(store):
    """Workers preparing, committing and viewing at once (as the solver's pool does)."""
    from concurrent.futures import ThreadPoolExecutor

    base = commit_tree(store, None, {"base/f": b"b"}, trusted=True)

    def chain(n: int):
        ref = base
        for i in range(4):
            ref = commit_tree(store, ref, {f"w{n}/s{i}": str(i).encode()}, trusted=n % 2 == 0)
        with store.view(ref) as p:
            return read_tree(p)

    with ThreadPoolExecutor(4) as pool:
        trees = list(pool.map(chain, range(8)))
    for n, tree in enumerate(trees):
        assert tree == {"base": None, "base/f": b"b", f"w{n}": None,
                        **{f"w{n}/s{i}": str(i).encode() for i in range(4)}}
    with store.view(base) as p:
        assert read_tree(p) == {"base": None, "base/f": b"b"}


def test_root_directory_metadata_is_kept_whatever_the_umask(store):
    old = os.umask(0o077)
    try:
        m = store.prepare(None)
        with m.mount() as p:
            assert os.lstat(p).st_mode & 0o777 == 0o755
            os.chmod(p, 0o750)
        a = m.commit()
        b = commit_tree(store, a, {"x": b"1"})
        with store.view(b) as p:
            assert os.lstat(p).st_mode & 0o777 == 0o750
    finally:
        os.umask(old)
