"""Layers that only delete (snapshot/removal.py, Store.delete_paths): which entries removing
paths in order takes away, and the layer written without a copy or mount of the tree, on
both snapshotters: the tree it gives, its recorded changes, its directories' metadata, its
whiteouts, and merges over it."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

import llb.snapshot.upper as upper
from llb.snapshot import Change, PathEscapeError
from llb.snapshot.metadata import is_whiteout
from llb.snapshot.removal import removal_paths
from treehelp import commit_tree, read_tree, write_tree


# ------------------------------------------------------------------------------ removal_paths


@pytest.fixture
def tree(tmp_path: Path) -> str:
    root = tmp_path / "tree"
    root.mkdir()
    write_tree(root, {"d/sub/f": b"f", "d/g": b"g", "file": b"x", "keep": b"k",
                      "link": "->d", "dangling": "->nowhere", "e": None})
    return str(root)


def test_removal_paths_takes_what_exists_topmost_first(tree):
    assert removal_paths(tree, ["file", "missing", "missing/deeper", "file/below",
                                "keep/below-a-file", "d/sub/f", "d", "d/g", "e"]) == [
        "d", "e", "file"]  # d/sub/f is listed as d (removed after it); d/g went with d


def test_removal_paths_removes_a_final_symlink_itself(tree):
    assert removal_paths(tree, ["link", "dangling"]) == ["dangling", "link"]
    # once the link is gone, a path through it is missing, not resolved
    assert removal_paths(tree, ["link", "link/g"]) == ["link"]


def test_removal_paths_gives_up_on_a_symlink_among_the_parents(tree):
    assert removal_paths(tree, ["file", "link/g"]) is None
    assert removal_paths(tree, ["link/sub/f"]) is None


@pytest.mark.parametrize("list_from", [1, 10**9])  # every directory listed once / lstat each
def test_removal_paths_lists_a_directory_or_looks_up_each_path_alike(tmp_path, monkeypatch,
                                                                     list_from):
    import llb.snapshot.removal as removal

    monkeypatch.setattr(removal, "_LIST_FROM", list_from)
    root = tmp_path / "many"
    root.mkdir()
    write_tree(root, {**{f"d/f{i}": b"x" for i in range(30)}, "d/sub/x": b"x",
                      "d/lnk": "->sub", "d/file": b"f", "top": b"t", "tlink": "->d"})
    paths = ([f"d/f{i}" for i in range(0, 40, 2)] +  # f30.. f38 are missing
             ["d/sub/x", "d/sub", "d/sub/y", "d/lnk", "d/lnk/x", "d/file/below", "d/nope/x",
              "top/below"])
    assert removal_paths(str(root), paths) == sorted(
        [f"d/f{i}" for i in range(0, 30, 2)] + ["d/sub", "d/lnk"],
        key=lambda p: p.split("/"))
    assert removal_paths(str(root), paths + ["tlink/f1"]) is None
    assert removal_paths(str(root), ["tlink", "tlink/f1"]) == ["tlink"]


def test_removal_paths_refuses_unclean_paths(tree):
    for bad in ["", "/file", "a/../file", "./file", "a//b", "a\x00b"]:
        with pytest.raises(PathEscapeError):
            removal_paths(tree, [bad])


# ------------------------------------------------------------------------------ the store


def _base(store):
    m = store.prepare(None)
    with m.mount() as p:
        write_tree(p, {**{f"data/f{i}": b"x" * 100 for i in range(10)}, "data/sub/y": b"y",
                       "top": b"t", "lnk": "->data"})
        os.chmod(p / "data", 0o750)
        os.chown(p / "data", 7, 8)
        os.setxattr(p / "data", "user.llb-test", b"v")
        os.utime(p / "data", ns=(1_000_000_000, 1_000_000_000))
    return m.commit()


def test_delete_paths_gives_the_tree_without_them(store):
    base = _base(store)
    before = set(store.snapshot_ids())
    ref = store.delete_paths(base, ["data/f0", "data/f2", "data/sub", "data/sub/y", "nope",
                                    "lnk"])
    assert ref is not None and set(store.snapshot_ids()) == before | {ref.id}
    with store.view(ref) as t:
        got = read_tree(t)
        d = os.lstat(t / "data")
        assert (stat.S_IMODE(d.st_mode), d.st_uid, d.st_gid) == (0o750, 7, 8)
        assert os.getxattr(t / "data", "user.llb-test") == b"v"
        assert d.st_mtime_ns > 1_000_000_000  # dated now, as the kernel dates a removal
    assert got == {"data": None, "top": b"t",
                   **{f"data/f{i}": b"x" * 100 for i in (1, 3, 4, 5, 6, 7, 8, 9)}}
    assert ref.layer_chain()[-1].changes() == [
        Change("data/f0", "delete"), Change("data/f2", "delete"), Change("data/sub", "delete"),
        Change("lnk", "delete")]
    with store.view(base) as t:  # the parent is untouched
        assert sorted(read_tree(t)) == sorted(
            ["data", "data/sub", "data/sub/y", "top", "lnk"] + [f"data/f{i}" for i in range(10)])
        assert os.lstat(t / "data").st_mtime_ns == 1_000_000_000


def test_delete_paths_copies_and_mounts_nothing(store):
    base = _base(store)
    ref = store.delete_paths(base, [f"data/f{i}" for i in range(0, 10, 2)])
    sdir = store.snapshot_dir(ref.id)
    layer = sdir / ("fs" if store.kind == "overlayfs" else "layer")
    assert sorted(os.listdir(sdir)) == [layer.name]  # no tree, tip or mount point
    names = sorted(os.listdir(layer / "data"))
    if store.kind == "overlayfs":
        assert names == [f"f{i}" for i in range(0, 10, 2)]
        sts = [os.lstat(layer / "data" / n) for n in names]
        assert all(is_whiteout(s) for s in sts)
        # one whiteout inode, hardlinked, as overlayfs shares its own
        assert {s.st_ino for s in sts} == {sts[0].st_ino} and sts[0].st_nlink == 5
    else:
        assert names == []
    with store.view(ref) as t:
        assert sorted(os.listdir(t / "data")) == ["f1", "f3", "f5", "f7", "f9", "sub"]


def test_delete_paths_through_a_symlinked_parent_does_nothing(store):
    base = _base(store)
    before = set(store.snapshot_ids())
    assert store.delete_paths(base, ["top", "lnk/f0"]) is None
    assert set(store.snapshot_ids()) == before
    with store.view(base) as t:
        assert (t / "data/f0").exists() and (t / "top").exists()


def test_delete_paths_of_nothing_is_an_empty_layer(store):
    base = _base(store)
    ref = store.delete_paths(base, ["missing", "top/below"])
    assert ref.layer_chain()[-1].changes() == []
    with store.view(ref) as t, store.view(base) as b:
        assert read_tree(t) == read_tree(b)


def test_merge_replays_the_deletions_and_a_child_builds_on_it(store):
    # merge-del's shape: a tree, the same tree with half of it deleted, merged onto a third
    base = _base(store)
    halved = store.delete_paths(base, [f"data/f{i}" for i in range(0, 10, 2)])
    third = commit_tree(store, None, {"data/keep": b"k", "data/f0": b"third"})
    merged = store.merge([third, halved])
    want = {"data": None, "data/sub": None, "data/sub/y": b"y", "top": b"t", "lnk": "->data",
            "data/keep": b"k", **{f"data/f{i}": b"x" * 100 for i in (1, 3, 5, 7, 9)}}
    with store.view(merged) as t:
        assert read_tree(t) == want
        assert stat.S_IMODE(os.lstat(t / "data").st_mode) == 0o750
    # a trusted child of the deleting layer (a FileOp after it) sees its tree
    child = commit_tree(store, halved, {"data/new": b"n"}, trusted=True)
    with store.view(child) as t:
        assert sorted(os.listdir(t / "data")) == ["f1", "f3", "f5", "f7", "f9", "new", "sub"]


# ------------------------------------------------------------------------------ whiteouts


def test_a_whiteout_past_the_link_limit_is_a_new_inode(tmp_path, monkeypatch):
    first = upper.make_whiteout(str(tmp_path / "a"))
    assert first == str(tmp_path / "a")
    assert upper.make_whiteout(str(tmp_path / "b"), first) == first
    assert os.lstat(tmp_path / "b").st_ino == os.lstat(tmp_path / "a").st_ino

    def emlink(*a, **k):
        raise OSError(errno.EMLINK, "Too many links")

    monkeypatch.setattr(os, "link", emlink)
    assert upper.make_whiteout(str(tmp_path / "c"), first) == str(tmp_path / "c")
    c = os.lstat(tmp_path / "c")
    assert is_whiteout(c) and c.st_ino != os.lstat(tmp_path / "a").st_ino and c.st_nlink == 1
