"""store.diff and layer chains: prefix reuse (same layer ids), computed diffs, merges."""

from __future__ import annotations

import os

from treehelp import commit_tree, read_tree
from llb.snapshot.layers import Change


def _tree(store, ref):
    if ref is None:
        return {}
    with store.view(ref) as p:
        return read_tree(p)


def test_diff_of_descendant_reuses_layers(store):
    a = commit_tree(store, None, {"base": b"1", "foo": b"f"})
    b = commit_tree(store, a, {"b1": b"2"}, delete=("foo",))
    c = commit_tree(store, b, {"c1": b"3"})
    d = store.diff(a, c)
    assert [l.id for l in d.layer_chain()] == [b.id, c.id]
    # the reused layers keep their deletions
    assert Change("foo", "delete") in d.layer_chain()[0].changes()
    assert _tree(store, d) == {"b1": b"2", "c1": b"3"}
    # merge([lower, diff]) is upper
    assert _tree(store, store.merge([a, d])) == _tree(store, c)


def test_diff_trivial_cases(store):
    a = commit_tree(store, None, {"x": b"1"})
    assert store.diff(a, a) is None
    assert store.diff(None, None) is None
    assert store.diff(None, a) == a
    assert [l.id for l in store.diff(None, a).layer_chain()] == [a.id]


def test_diff_prefix_through_merge(store):
    a = commit_tree(store, None, {"a": b"1"})
    b = commit_tree(store, None, {"b": b"2"})
    m = store.merge([a, b])
    assert [l.id for l in m.layer_chain()] == [a.id, b.id]
    on = commit_tree(store, m, {"c": b"3"})
    assert [l.id for l in on.layer_chain()] == [a.id, b.id, on.id]
    d = store.diff(a, on)
    assert [l.id for l in d.layer_chain()] == [b.id, on.id]
    assert _tree(store, d) == {"b": b"2", "c": b"3"}


def test_nested_merge_chain_is_flat_concatenation(store):
    a = commit_tree(store, None, {"a": b"1"})
    b = commit_tree(store, None, {"b": b"2"})
    c = commit_tree(store, None, {"c": b"3"})
    nested = store.merge([store.merge([a, b]), c])
    flat = store.merge([a, b, c])
    assert [l.id for l in nested.layer_chain()] == [l.id for l in flat.layer_chain()]
    assert _tree(store, nested) == _tree(store, flat) == {"a": b"1", "b": b"2", "c": b"3"}
    assert store.merge([None, a, None]) == a
    assert store.merge([None, None]) is None


def test_computed_diff_of_unrelated_trees(store):
    lower = commit_tree(store, None, {"same": b"s", "changed": b"old", "gone": b"g",
                                      "dir/inner": b"i", "dir/lost": b"l"})
    upper = commit_tree(store, None, {"same": b"s", "changed": b"new", "added": b"a",
                                      "dir/inner": b"i"})
    d = store.diff(lower, upper)
    changes = {c.path: c.kind for c in d.layer_chain()[-1].changes()}
    assert len(d.layer_chain()) == 1 and d.layer_chain()[0].id == d.id
    assert changes["changed"] == "modify" and changes["added"] == "add"
    assert changes["gone"] == "delete" and changes["dir/lost"] == "delete"
    assert set(changes) <= {"same", "changed", "added", "gone", "dir", "dir/inner", "dir/lost"}
    merged = store.merge([lower, d])
    assert _tree(store, merged) == _tree(store, upper)


def test_computed_diff_detects_metadata_only_change(store):
    a = commit_tree(store, None, {"f": b"x", "g": b"y"})
    m = store.prepare(None)
    with store.view(a) as src, m.mount() as dst:
        for name in ("f", "g"):
            (dst / name).write_bytes((src / name).read_bytes())
            st = os.lstat(src / name)
            os.utime(dst / name, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.chmod(dst / "g", 0o600)
        st = os.lstat(src)
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
    b = m.commit()
    d = store.diff(a, b)
    assert [(c.path, c.kind) for c in d.layer_chain()[0].changes()] == [("g", "modify")]
    assert store.diff(a, None).layer_chain()[0].changes() == [
        Change("f", "delete"), Change("g", "delete")]


def test_diff_keeps_deletions_replayed_by_merge(store):
    a = commit_tree(store, None, {"foo": b"1", "keep": b"k"})
    b = commit_tree(store, a, {}, delete=("foo",))
    c = commit_tree(store, None, {"foo": b"c", "other": b"o"})
    d = store.diff(a, b)
    assert _tree(store, store.merge([c, d])) == {"other": b"o"}
