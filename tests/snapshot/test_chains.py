"""Layer chains that repeat layers (issue 10, item 6): a merge of a merge of itself keeps
its chain's length and order without listing it, builds its tree from each layer once, and
store.diff follows BuildKit v0.11.6's rule (prefix reuse only with two or more extra layers,
a single layer on lower reused, a tree comparison otherwise)."""

from __future__ import annotations

import pytest

from treehelp import commit_tree, read_tree
from llb.snapshot.chains import ChainError
from llb.snapshot.errors import NotFoundError


def _tree(store, ref):
    if ref is None:
        return {}
    with store.view(ref) as p:
        return read_tree(p)


def _doubled(store, ref, n):
    for _ in range(n):
        ref = store.merge([ref, ref])
    return ref


def test_a_forty_fold_merge_has_2_to_the_40_layers_and_one_tree(store):
    s = commit_tree(store, None, {"a": b"1"})
    t = commit_tree(store, s, {"b": b"2"})
    m40 = _doubled(store, t, 40)
    chains = store.index.chains
    assert chains.length(m40.id) == 2 ** 41
    assert store.index.tree_chain(m40.id) == [s.id, t.id]
    assert _tree(store, m40) == {"a": b"1", "b": b"2"}
    with pytest.raises(ChainError, match="too many to list"):
        m40.layer_chain()
    m3 = _doubled(store, t, 3)
    assert [layer.id for layer in m3.layer_chain()] == [s.id, t.id] * 8


def test_tree_keeps_each_layer_at_its_last_place(store):
    a = commit_tree(store, None, {"x": b"a", "only-a": b"a"})
    b = commit_tree(store, None, {"x": b"b"})
    ab = store.merge([a, b])
    m = store.merge([ab, a, ab])  # a b a a b
    assert [layer.id for layer in m.layer_chain()] == [a.id, b.id, a.id, a.id, b.id]
    assert store.index.tree_chain(m.id) == [a.id, b.id]
    assert _tree(store, m) == {"x": b"b", "only-a": b"a"}
    m2 = store.merge([ab, a])  # a b a
    assert store.index.tree_chain(m2.id) == [b.id, a.id]
    assert _tree(store, m2) == {"x": b"a", "only-a": b"a"}


def test_diff_of_a_merge_repeating_lower_is_empty(store):
    """BuildKit: diff(s, merge([s, s])) compares trees (upper has one layer more than lower,
    but it is no layer on lower): nothing changed."""
    s = commit_tree(store, None, {"a": b"1"})
    assert store.diff(s, store.merge([s, s])) is None
    # with two layers more it is the layers above lower's: s's own layer again
    d = store.diff(s, store.merge([s, s, s]))
    assert [layer.id for layer in d.layer_chain()] == [s.id, s.id]
    assert _tree(store, d) == {"a": b"1"}


def test_diff_against_an_ancestor_merged_again(store):
    s1 = commit_tree(store, None, {"a": b"1", "c": b"1", "d/f": b"1"})
    s2 = commit_tree(store, s1, {"d/f": b"2", "b": b"2"}, delete=("a",))
    m = store.merge([s2, s1])  # s1 s2 s1
    # lower s1 is a prefix and upper has two layers more: those layers, reused
    d1 = store.diff(s1, m)
    assert [layer.id for layer in d1.layer_chain()] == [s2.id, s1.id]
    assert _tree(store, d1) == {"a": b"1", "b": b"2", "c": b"1", "d": None, "d/f": b"1"}
    # lower s2 is a prefix but upper has one layer more, not on s2: a tree comparison
    d2 = store.diff(s2, m)
    assert [layer.id for layer in d2.layer_chain()] == [d2.id]
    assert _tree(store, d2) == {"a": b"1", "d": None, "d/f": b"1"}


def test_diff_of_one_layer_on_lower_is_that_layer(store):
    a = commit_tree(store, None, {"a": b"1"})
    b = commit_tree(store, a, {"b": b"2"})
    d = store.diff(a, b)
    assert [layer.id for layer in d.layer_chain()] == [b.id]


def test_diff_between_deep_doublings_is_their_tail(store):
    s = commit_tree(store, None, {"a": b"1"})
    m39 = _doubled(store, s, 39)
    m40 = store.merge([m39, m39])
    d = store.diff(m39, m40)
    assert store.index.chains.length(d.id) == 2 ** 39
    assert store.index.tree_chain(d.id) == [s.id]
    assert _tree(store, d) == {"a": b"1"}
    ds = store.diff(s, m40)
    assert store.index.chains.length(ds.id) == 2 ** 40 - 1
    assert _tree(store, ds) == {"a": b"1"}
    # a layer on the tail, and a merge of it: trees from each layer once
    on = commit_tree(store, ds, {"z": b"z"})
    assert _tree(store, store.merge([on, ds, on])) == {"a": b"1", "z": b"z"}


def test_prefix_test_gives_up_past_its_budget(store):
    a = commit_tree(store, None, {"a": b"1"})
    b = commit_tree(store, a, {"b": b"1"})
    c = commit_tree(store, b, {"c": b"1"})
    chains = store.index.chains
    assert chains.is_prefix(a.id, c.id) is True
    assert chains.is_prefix(b.id, a.id) is False
    assert chains.is_prefix(a.id, c.id, budget=1) is None


def test_a_layer_chain_is_not_listed_again_at_each_step(store, monkeypatch):
    """Preparing on the tip of a chain of committed layers whose trees are known complete
    lists no chain (a FileOp chain of n steps once cost n^2/2 chain steps here)."""
    listed = []
    real = store.index.chains.tree_layers
    monkeypatch.setattr(store.index.chains, "tree_layers",
                        lambda items: listed.append(items) or real(items))
    ref = None
    for i in range(30):
        ref = commit_tree(store, ref, {f"f{i}": b"%d" % i}, trusted=True)
    assert len(listed) <= 1
    assert _tree(store, ref) == {f"f{i}": b"%d" % i for i in range(30)}
    store.index.forget()  # snapshots removed elsewhere: known trees are forgotten too
    assert not store.index.solid_trees
    assert _tree(store, ref) == {f"f{i}": b"%d" % i for i in range(30)}


def test_a_layer_chain_is_read_in_one_query_not_one_a_layer(tmp_path):
    # a cached solve of a chain of n FileOps lists its result's tree chain: n row reads
    # were n queries; the rows come with the first (MetaDB.lineage)
    from llb.snapshot import Store

    root = tmp_path / "root"
    with Store(root, snapshotter="native") as store:
        refs = [None]
        for i in range(40):
            refs.append(commit_tree(store, refs[-1], {f"f{i}": b"%d" % i}))
        top = refs[-1].id
        ids = [r.id for r in refs[1:]]
    with Store(root, snapshotter="native") as store:
        sql: list[str] = []
        store.db._conn.set_trace_callback(sql.append)
        assert store.index.tree_chain(top) == ids
        assert store.index.tree_needs(top) == []
        assert len([s for s in sql if "FROM snapshots" in s]) <= 3
        # a removed snapshot still reads as missing
        store.db._conn.set_trace_callback(None)
        store.index.forget()
        with pytest.raises(NotFoundError):
            store.index.chains.tree_layers([("0" * 24, 0)])


@pytest.mark.parametrize("snapshotter", ["native", "overlayfs"])
def test_a_merge_of_layers_just_committed_reads_their_diffs_from_memory(tmp_path, snapshotter):
    # a committed layer's recorded diff is kept by the process that recorded it: a merge
    # right after (a FileOp's layer merged by the next vertex) reads no change back from
    # the DB, and gets what the DB holds (order, non-UTF-8 names, deletions)
    import os

    from llb.snapshot import Store

    latin = os.fsdecode(b"caf\xe9")
    root = tmp_path / "root"
    try:
        store = Store(root, snapshotter=snapshotter)
    except Exception as e:  # noqa: BLE001 - no overlay mounts here
        pytest.skip(f"no {snapshotter} store here: {e}")
    with store:
        a = commit_tree(store, None, {"d/x": b"1", "d/y": b"2", latin: b"3", "e": None})
        b = commit_tree(store, a, {"d/z": b"4"}, delete=("d/x", "e"), trusted=True)
        c = commit_tree(store, None, {"d/x": b"5", "w": b"6"})
        sql: list[str] = []
        store.db._conn.set_trace_callback(sql.append)
        m = store.merge([c, b])
        store.db._conn.set_trace_callback(None)
        assert [s for s in sql if "FROM changes" in s or "FROM diffs" in s] == []
        remembered = {i: store.index.changes(i) for i in (a.id, b.id, c.id)}
        with store.view(m) as tree:
            got = read_tree(tree)
    assert got == {"d": None, "d/y": b"2", "d/z": b"4", latin: b"3", "w": b"6"}
    with Store(root, snapshotter=snapshotter) as fresh:  # read back from the DB
        assert {i: fresh.index.changes(i) for i in remembered} == remembered
        fresh.index.remember_changes("0" * 24, [])
        fresh.index.forget()  # snapshots removed: nothing remembered is trusted any more
        assert fresh.index._remembered == {}
