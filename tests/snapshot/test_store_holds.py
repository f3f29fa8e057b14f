"""What a store's session holds across processes (issue 10, item 9): a prune elsewhere never
removes what a live session committed, pinned or viewed; a pin after a removal reports the
snapshot gone; a closed (or dead) session holds nothing. Two stores on one root stand for
two processes (each has a session of its own)."""

from __future__ import annotations

from pathlib import Path

from treehelp import commit_tree
from llb.snapshot import Store


def _other(store: Store) -> Store:
    return Store(store.root, store.kind)


def test_what_a_live_session_committed_survives_a_prune_elsewhere(store):
    a = commit_tree(store, None, {"a": b"1"})
    b = commit_tree(store, a, {"b": b"2"})
    aid, bid = a.id, b.id
    del a, b  # no Ref left here: only the DB hold keeps them from the other prune
    other = _other(store)
    try:
        assert other.in_use() >= {aid, bid}
        other.prune()
        assert store.exists(aid) and store.exists(bid)
        store.close()
        assert other.in_use() == set()
        other.prune()
        assert not other.exists(aid) and not other.exists(bid)
    finally:
        other.close()


def test_a_pin_holds_a_snapshot_and_what_it_depends_on(store):
    a = commit_tree(store, None, {"a": b"1"})
    b = commit_tree(store, a, {"b": b"2"})
    ids = (a.id, b.id)
    store.lease(b.id, "cache:x")
    store.close()  # its commits are no longer held; the lease keeps them
    solver = Store(store.root, store.kind)
    pruner = Store(store.root, store.kind)
    try:
        assert solver.pin([ids[1]], solver.generation()) == set()
        pruner.release(ids[1], "cache:x")
        assert pruner.in_use() == set(ids)
        pruner.prune()
        assert pruner.exists(ids[0]) and pruner.exists(ids[1])
        with solver.view(solver.get(ids[1])) as p:
            assert (p / "a").read_bytes() == b"1" and (p / "b").read_bytes() == b"2"
    finally:
        solver.close()
        pruner.prune()
        assert not pruner.exists(ids[1])
        pruner.close()


def test_a_pin_after_a_removal_reports_the_snapshot_gone(store):
    a = commit_tree(store, None, {"a": b"1"})
    aid = a.id
    store.lease(aid, "cache:x")
    store.close()
    solver = Store(store.root, store.kind)
    pruner = Store(store.root, store.kind)
    try:
        since = solver.generation()  # read before the "lookup" that found aid
        pruner.release(aid, "cache:x")
        pruner.prune()
        assert solver.pin([aid], since) == {aid}
        assert solver.pin([aid]) == {aid}
    finally:
        solver.close()
        pruner.close()


def test_a_view_is_held_while_open_and_until_close(store):
    a = commit_tree(store, None, {"a": b"1"})
    aid = a.id
    store.lease(aid, "cache:x")
    store.close()
    viewer = Store(store.root, store.kind)
    pruner = Store(store.root, store.kind)
    try:
        with viewer.view(viewer.get(aid)) as p:
            pruner.release(aid, "cache:x")
            pruner.prune()
            assert (p / "a").read_bytes() == b"1"
        pruner.prune()
        assert pruner.exists(aid)  # held by the viewer's session until it closes
        viewer.close()
        pruner.prune()
        assert not pruner.exists(aid)
    finally:
        viewer.close()
        pruner.close()


def test_own_prune_still_frees_dropped_refs(tmp_path: Path):
    store = Store(tmp_path / "root", "native")
    try:
        a = commit_tree(store, None, {"a": b"1"})
        aid = a.id
        del a
        store.prune()  # this session's DB hold does not keep it from its own prune
        assert not store.exists(aid)
    finally:
        store.close()
