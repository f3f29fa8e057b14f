"""llb.fsutil.walk, remove_tree and disk_usage: the order of a walk, pruning, leave events,
and trees deeper than any recursion limit or PATH_MAX."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from deephelp import make_chain
from llb.fsutil import PathTooLongError, disk_usage, remove_tree, walk
from llb.fsutil.walk import KEEP_FDS

pytestmark = pytest.mark.usefixtures("no_deep_leftovers")


def test_order_is_bytewise_with_directories_before_and_after_their_contents(tmp_path):
    for name in (b"b", b"a", b"\x80", "é".encode(), b"A"):
        (tmp_path / os.fsdecode(name)).mkdir()
    (tmp_path / "a" / "z").write_text("z")
    (tmp_path / "a" / "y").mkdir()
    seen = [(e.rel, e.leaving) for e in walk(tmp_path, leave=True)]
    # str order would put "é" (U+00E9) before the undecodable byte 0x80 (U+DC80)
    assert seen == [
        ("A", False), ("A", True), ("a", False), ("a/y", False), ("a/y", True),
        ("a/z", False), ("a", True), ("b", False), ("b", True),
        (os.fsdecode(b"\x80"), False), (os.fsdecode(b"\x80"), True), ("é", False), ("é", True),
    ]


def test_pruned_directories_are_not_entered_and_entries_carry_lstat(tmp_path):
    (tmp_path / "skip" / "in").mkdir(parents=True)
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "f").write_bytes(b"12345")
    os.symlink("keep", tmp_path / "link")
    rels = []
    for e in walk(tmp_path, leave=True):
        rels.append(e.rel)
        if e.rel == "skip":
            e.prune()
        if e.rel == "keep/f":
            assert e.st.st_size == 5 and not e.is_dir
            assert os.read(os.open(e.name, os.O_RDONLY, dir_fd=e.dir_fd), 9) == b"12345"
        if e.rel == "link":
            assert not e.is_dir  # never followed
    assert rels == ["keep", "keep/f", "keep", "link", "skip"]


def test_a_tree_deeper_than_the_recursion_limit_is_walked_measured_and_removed(tmp_path):
    depth = 1100  # os.walk and shutil.rmtree (Python 3.11) recurse once per level
    top = tmp_path / "t"
    top.mkdir()
    make_chain(top, depth)
    fds_before = len(os.listdir("/proc/self/fd"))
    most = 0
    n = 0
    for e in walk(top, leave=True):
        n += 1
        if n % 100 == 0:
            most = max(most, len(os.listdir("/proc/self/fd")) - fds_before)
    assert n == 2 * depth + 1
    assert most <= KEEP_FDS + 4  # not one descriptor per level
    assert disk_usage([top]) >= depth * 4096
    remove_tree(top)
    assert not top.exists()


def test_paths_longer_than_path_max_are_walked_and_removed_by_dir_fds(tmp_path):
    top = tmp_path / "t"
    top.mkdir()
    make_chain(top, 40, name="n" * 200)  # 40 levels of 200-byte names: 8040 bytes of path
    for e in walk(top):
        if e.name == "f":
            with pytest.raises(PathTooLongError, match="PATH_MAX"):
                e.path
            assert os.stat(e.name, dir_fd=e.dir_fd).st_size == 0
            break
    else:
        raise AssertionError("the walk did not reach the bottom")
    assert disk_usage([top]) >= 40 * 4096
    remove_tree(top)
    assert not top.exists()


def test_remove_tree_takes_anything_and_tolerates_a_missing_path(tmp_path):
    remove_tree(tmp_path / "missing")
    (tmp_path / "f").write_text("x")
    remove_tree(tmp_path / "f")
    os.symlink(tmp_path, tmp_path / "link")
    remove_tree(tmp_path / "link")  # the link itself, never what it points at
    assert tmp_path.is_dir()
    d = tmp_path / "d"
    (d / "ro" / "sub").mkdir(parents=True)
    (d / "ro" / "sub" / "f").write_text("x")
    os.mkfifo(d / "fifo")
    os.chmod(d / "ro", 0o555)
    remove_tree(d)
    assert os.listdir(tmp_path) == []


def test_disk_usage_counts_each_inode_once_and_exclusive_leaves_out_shared_links(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "big").write_bytes(b"x" * 100_000)
    os.link(a / "big", a / "again")
    os.link(a / "big", b / "shared")
    block = os.lstat(a / "big").st_blocks * 512
    dirs = os.lstat(a).st_blocks * 512
    assert disk_usage([a]) == dirs + block
    assert disk_usage([a], exclusive=True) == dirs  # b still holds the data
    assert disk_usage([a, b], exclusive=True) == dirs + os.lstat(b).st_blocks * 512 + block
