"""differ.tree_changes and overlay_changes: a tree against nothing (a snapshot without
parent) is all additions, every entry listed once in path_key order, symlinks to
directories not descended (an upperdir's whiteouts left out); against a lower tree, the new
subtrees are all additions too."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from llb.snapshot.differ import tree_changes
from llb.snapshot.layers import Change, path_key

LATIN = os.fsdecode(b"caf\xe9")


def _fill(root: Path) -> None:
    for d in ("a", "a/b", "a.b", "a/b/c", "z"):
        (root / d).mkdir()
    for f in ("a/f", "a/b/c/g", "a.b/h", "top", LATIN):
        (root / f).write_bytes(b"x")
    os.symlink("a", root / "link")  # a symlink to a directory: listed, never descended
    os.symlink("missing", root / "a/dangling")


def test_a_tree_against_nothing_is_every_entry_added_in_path_key_order(tmp_path: Path):
    up = tmp_path / "up"
    up.mkdir()
    _fill(up)
    got = tree_changes(up, None, same_fs=True)
    want = sorted(["a", "a/b", "a.b", "a/b/c", "z", "a/f", "a/b/c/g", "a.b/h", "top", LATIN,
                   "link", "a/dangling"], key=path_key)
    assert got == [Change(p, "add") for p in want]
    assert [c.path for c in got][:4] == ["a", "a/b", "a/b/c", "a/b/c/g"]  # subtree first


def test_new_subtrees_below_a_lower_tree_are_all_additions(tmp_path: Path):
    low, up = tmp_path / "low", tmp_path / "up"
    low.mkdir()
    up.mkdir()
    (low / "keep").write_bytes(b"k")
    os.link(low / "keep", up / "keep")
    os.mkdir(up / "new")
    _fill(up / "new")
    got = tree_changes(up, low, same_fs=True)
    want = ["new"] + [f"new/{p}" for p in sorted(
        ["a", "a/b", "a.b", "a/b/c", "z", "a/f", "a/b/c/g", "a.b/h", "top", LATIN, "link",
         "a/dangling"], key=path_key)]
    assert got == [Change(p, "add") for p in sorted(want, key=path_key)]


def test_an_upper_without_lower_is_every_entry_added_but_its_whiteouts(tmp_path: Path):
    """overlay_changes of an upperdir over nothing (an overlay snapshot without parent):
    each entry added once in path_key order, whiteouts (0/0 character devices, nothing
    below them to hide) left out, also inside new directories."""
    from llb.snapshot.differ import overlay_changes

    up = tmp_path / "up"
    up.mkdir()
    _fill(up)
    for w in ("gone", "a/b/gone"):
        os.mknod(up / w, stat.S_IFCHR | 0o000, os.makedev(0, 0))
    got = overlay_changes(up, None)
    want = sorted(["a", "a/b", "a.b", "a/b/c", "z", "a/f", "a/b/c/g", "a.b/h", "top", LATIN,
                   "link", "a/dangling"], key=path_key)
    assert got == [Change(p, "add") for p in want]
