"""overlayfs snapshotter: upperdirs with kernel whiteouts and opaque dirs, the recorded diff
read from them, and chains too deep for one mount. Opaque/whiteout recording is checked on
both snapshotters (the native one must record the same changes by walking)."""

from __future__ import annotations

import os
from pathlib import Path
import shutil
import stat

import pytest

import llb.snapshot.mount as mount_mod
from treehelp import commit_tree, read_tree
from llb.snapshot.layers import Change
from llb.snapshot.metadata import is_opaque
from llb.snapshot.overlay import MAX_LOWERS


def _base(store):
    return commit_tree(store, None, {"d/old1": b"1", "d/sub/old2": b"2", "d/keep": b"k",
                                     "f": b"f", "e/x": b"x"})


def test_whiteouts_and_opaque_dirs_recorded(store):
    base = _base(store)
    m = store.prepare(base)
    with m.mount() as p:
        shutil.rmtree(p / "d")            # overlay: d becomes opaque when recreated
        (p / "d").mkdir()
        (p / "d/keep").write_bytes(b"new")
        (p / "d/sub").mkdir()
        os.unlink(p / "f")                # whiteout
        shutil.rmtree(p / "e")            # whiteout of a directory
    ref = m.commit()
    changes = ref.layer_chain()[-1].changes()
    # d and d/sub were recreated with the same mode: not changes themselves (BuildKit)
    assert changes == [
        Change("d/keep", "modify"), Change("d/old1", "delete"), Change("d/sub/old2", "delete"),
        Change("e", "delete"), Change("f", "delete"),
    ]
    with store.view(ref) as p:
        assert read_tree(p) == {"d": None, "d/keep": b"new", "d/sub": None}


def test_upperdir_holds_kernel_whiteouts(overlay_store):
    store = overlay_store
    base = _base(store)
    m = store.prepare(base)
    with m.mount() as p:
        os.unlink(p / "f")
        shutil.rmtree(p / "d")
        (p / "d").mkdir()
    ref = m.commit()
    upper = ref.layer_chain()[-1].path("")
    st = os.lstat(upper / "f")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert is_opaque(upper / "d")
    assert not (upper / "e").exists()  # untouched paths are not in the upper
    assert not (Path(store.root) / "snapshots" / ref.id / "work").exists()


def test_child_of_merge_mounts_on_its_tree(store):
    a = commit_tree(store, None, {"a": b"1", "shared/x": b"a"})
    b = commit_tree(store, None, {"b": b"2", "shared/y": b"b"})
    merged = store.merge([a, b])
    child = commit_tree(store, merged, {"c": b"3"}, delete=("shared/x",))
    assert [l.id for l in child.layer_chain()] == [a.id, b.id, child.id]
    assert child.layer_chain()[-1].changes() == [Change("c", "add"), Change("shared/x", "delete")]
    with store.view(child) as p:
        assert read_tree(p) == {"a": b"1", "b": b"2", "c": b"3", "shared": None,
                                "shared/y": b"b"}
    with store.view(a) as p:
        assert read_tree(p) == {"a": b"1", "shared": None, "shared/x": b"a"}


def test_chain_past_flatten_threshold(overlay_store):
    store = overlay_store
    ref = None
    for i in range(MAX_LOWERS + 6):
        ref = commit_tree(store, ref, {f"f{i}": str(i).encode()},
                          delete=(f"f{i - 1}",) if i % 10 == 9 else ())
    flats = [d for d in (Path(store.root) / "snapshots").iterdir() if (d / "flat").is_dir()]
    assert len(flats) == 1
    with store.view(ref) as p:
        tree = read_tree(p)
    want = {f"f{i}": str(i).encode() for i in range(MAX_LOWERS + 6) if i % 10 != 8}
    assert tree == want
    assert len(ref.layer_chain()) == MAX_LOWERS + 6  # flattening never changes the chain


def _publish_layer(store, parent, i):
    """A layer snapshot laid out directly (what a commit of one new file records)."""
    sid = f"deep{i:04d}" + "0" * 16
    tmp = Path(store.session.dir) / sid
    (tmp / "fs").mkdir(parents=True)
    (tmp / "fs" / f"f{i}").write_bytes(str(i).encode())
    return store._publish(sid, tmp, "layer", parent.id if parent else None, [],
                          [Change(f"f{i}", "add")])


def test_600_layer_chain_mounts_by_flattening(overlay_store):
    store = overlay_store
    ref = None
    for i in range(600):
        ref = _publish_layer(store, ref, i)
    with store.view(ref) as p:
        assert len(os.listdir(p)) == 600
        assert (p / "f0").read_bytes() == b"0" and (p / "f599").read_bytes() == b"599"
    child = commit_tree(store, ref, {"top": b"t"}, delete=("f0",))
    with store.view(child) as p:
        names = set(os.listdir(p))
    assert "top" in names and "f0" not in names and len(names) == 600
    assert child.layer_chain()[-1].changes() == [Change("f0", "delete"), Change("top", "add")]


def test_mount8_fallback_with_relative_paths(overlay_store, monkeypatch):
    """Without the new mount API, mount(8) gets paths relative to the root; a full stack
    of MAX_LOWERS layers must fit in one page of options."""
    store = overlay_store
    ref = None
    for i in range(MAX_LOWERS - 1):
        ref = _publish_layer(store, ref, i)
    monkeypatch.setattr(mount_mod, "_new_api", False)
    m = store.prepare(ref)
    with m.mount() as p:
        assert len(os.listdir(p)) == MAX_LOWERS - 1
        (p / "new").write_bytes(b"n")
    top = m.commit()
    assert top.layer_chain()[-1].changes() == [Change("new", "add")]


def test_mount_failure_is_typed(overlay_store, tmp_path):
    from llb.snapshot.errors import SnapshotError
    with pytest.raises(SnapshotError, match="overlay mount failed"):
        mount_mod.mount_overlay(tmp_path / "missing-target", tmp_path, ["nope1", "nope2"])


def test_layered_lookup_agrees_with_mounted_view(overlay_store):
    """A commit's path-by-path lookup through the layers answers exactly what the mounted
    parent shows, through whiteouts, opaque dirs and type changes in the middle layers."""
    from llb.snapshot.differ import LayeredLower, PathLower
    store = overlay_store
    a = commit_tree(store, None, {"d/x": b"1", "d/sub/y": b"2", "f": b"f", "g/h": b"h",
                                  "keep/k": b"k"})
    m = store.prepare(a)
    with m.mount() as p:
        shutil.rmtree(p / "d")
        (p / "d").mkdir()
        (p / "d/new").write_bytes(b"n")   # d opaque in this layer
        os.unlink(p / "f")
        (p / "f").mkdir()                 # file -> dir
        shutil.rmtree(p / "g")
        (p / "g").write_bytes(b"file")    # dir -> file
    b = m.commit()
    c = commit_tree(store, b, {"keep/k2": b"2"}, delete=("keep/k",))
    paths = ["d", "d/x", "d/sub", "d/sub/y", "d/new", "f", "f/x", "g", "g/h", "keep",
             "keep/k", "keep/k2", "nope", "nope/deeper"]
    dirs = [os.path.join(store.root, d) for d in store._driver.lowers(c.id)]
    assert len(dirs) == 3
    layered = LayeredLower(dirs)
    with store.view(c) as v:
        view = PathLower(v)
        for rel in paths:
            got, want = layered.lookup(rel), view.lookup(rel)
            assert (got is None) == (want is None), rel
            if got is not None:
                assert stat.S_IFMT(got[0].st_mode) == stat.S_IFMT(want[0].st_mode), rel
