"""Merges that repeat a layer (issue 10, item 6), side by side with a real buildkitd: the
trees llb exports equal BuildKit v0.11.6's, and a merge of a merge of itself forty times
deep (2^40 layers in its chain) solves at once.

BuildKit's rule, which llb follows (snapshot/store.py Store.diff, snapshot/chains.py): a
merge's chain is its inputs' chains concatenated, repetitions kept (cache/manager.go Merge,
cache/refs.go layerChain); Diff(lower, upper) reuses upper's layers above lower's only when
upper's chain is lower's plus at least two more layers; when upper is one layer on lower
itself, that layer; otherwise the diff is computed by comparing the two trees
(cache/manager.go Diff, cache/refs.go layerWalk). So `diff(s1, merge([s1, s1]))` is empty,
and `diff(s2, merge([s2, s1]))` holds only what s1's layer changes in s2's tree."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from bkhelp import BUILDCTL, tree

LLB = str(Path(sys.executable).parent / "llb")

BUILD = '''
import llb

def s1():
    return llb.scratch().file(llb.mkdir("/d", mode=0o755).mkfile("/d/f", b"1")
                              .mkfile("/a", b"1").mkfile("/c", b"1"))

def s2():
    return s1().file(llb.rm("/a").mkfile("/d/f", b"2").mkfile("/b", b"2"))

def other():
    return llb.scratch().file(llb.mkfile("/a", b"x").mkfile("/b", b"x").mkdir("/d")
                              .mkfile("/d/f", b"x").mkfile("/d/g", b"x").mkfile("/c", b"x"))

def file_a():
    return llb.scratch().file(llb.mkfile("/a", b"hi", mode=0o644))

def repeat_then_mkdir():
    # BuildKit: the diff is empty, so /a/v can be made; llb used to fail "not a directory"
    s = file_a()
    return llb.diff(s, llb.merge([s, s])).file(llb.mkdir("/a/v", mode=0o755, parents=True))

def repeat_onto_other():
    s = file_a()
    return llb.merge([other(), llb.diff(s, llb.merge([s, s]))])

def ancestor_diff_lower():
    return llb.merge([other(), llb.diff(s1(), llb.merge([s2(), s1()]))])

def ancestor_diff_upper():
    # used to differ: llb gave s1's whole layer, BuildKit what it changes in s2's tree
    return llb.diff(s2(), llb.merge([s2(), s1()]))

def ancestor_diff_upper_onto_other():
    return llb.merge([other(), llb.diff(s2(), llb.merge([s2(), s1()]))])

def reversed_diff_onto_other():
    return llb.merge([other(), llb.diff(llb.merge([s2(), s1()]), s1())])

def one_more_layer_onto_other():
    # upper is lower's chain plus one layer, but not a layer on lower: a tree comparison
    extra = llb.scratch().file(llb.mkfile("/e", b"e"))
    return llb.merge([other(), llb.diff(s1(), llb.merge([s1(), extra]))])

def _doubled(n):
    m = s1()
    for _ in range(n):
        m = llb.merge([m, m])
    return m

def doubled3():
    return llb.merge([other(), llb.diff(s1(), _doubled(3)), _doubled(3)])

def doubled40():
    return _doubled(40)

def doubled40_diffs():
    m39 = _doubled(39)
    m40 = llb.merge([m39, m39])
    return llb.merge([other(), llb.diff(s1(), m40), llb.diff(m39, m40).file(llb.mkfile("/z", b"z"))])
'''

COMPARED = ["repeat_then_mkdir", "repeat_onto_other", "ancestor_diff_lower",
            "ancestor_diff_upper", "ancestor_diff_upper_onto_other", "reversed_diff_onto_other",
            "one_more_layer_onto_other", "doubled3"]


def _solve(args: list[str], out: Path, timeout: float = 300) -> None:
    p = subprocess.run([LLB, "solve", *args, "--output", f"type=local,dest={out}",
                        "--progress", "plain"], capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stderr[-3000:]


def _files(t: dict[str, tuple]) -> dict[str, object]:
    return {k: (v[1] if v[0] == "file" else v[0]) for k, v in t.items()}


@pytest.mark.parametrize("target", COMPARED)
def test_repeated_layers_give_buildkits_tree(tmp_path: Path, buildkitd, target: str):
    build = tmp_path / "build.py"
    build.write_text(BUILD)
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    _solve([str(build), "--target", target, "--root", str(tmp_path / "root"),
            "--snapshotter", buildkitd.snapshotter], ours)
    _solve([str(build), "--target", target, "--backend", "buildkit", "--addr", buildkitd.addr,
            "--buildctl", str(BUILDCTL)], theirs)
    assert tree(ours) == tree(theirs)
    assert tree(ours), "empty export"


def test_known_trees(tmp_path: Path, buildkitd):
    """What the comparisons above agree on, spelled out (so a change on both sides shows)."""
    build = tmp_path / "build.py"
    build.write_text(BUILD)
    got = {}
    for target in ("repeat_then_mkdir", "ancestor_diff_upper"):
        out = tmp_path / target
        _solve([str(build), "--target", target, "--root", str(tmp_path / "root"),
                "--snapshotter", buildkitd.snapshotter], out)
        got[target] = _files(tree(out))
    assert got["repeat_then_mkdir"] == {"a": "dir", "a/v": "dir"}
    assert got["ancestor_diff_upper"] == {"a": b"1", "d": "dir", "d/f": b"1"}


def test_forty_fold_merge_solves_at_once(tmp_path: Path, buildkitd):
    """2^40 layers: BuildKit v0.11.6 flattens them all (at 16 doublings it did not finish in
    5 minutes); llb keeps each layer once and diffs by shared structure."""
    build = tmp_path / "build.py"
    build.write_text(BUILD)
    s1_tree = {"a": b"1", "c": b"1", "d": "dir", "d/f": b"1"}
    root = ["--root", str(tmp_path / "root"), "--snapshotter", buildkitd.snapshotter]
    _solve([str(build), "--target", "doubled40", *root], tmp_path / "m40", timeout=60)
    assert _files(tree(tmp_path / "m40")) == s1_tree
    _solve([str(build), "--target", "doubled40_diffs", *root], tmp_path / "d40", timeout=60)
    # diff(s1, m40) is m40's layers above s1's: s1's own layer again, over other's files;
    # diff(m39, m40) too, with /z on it
    assert _files(tree(tmp_path / "d40")) == {**s1_tree, "b": b"x", "d/g": b"x", "z": b"z"}
