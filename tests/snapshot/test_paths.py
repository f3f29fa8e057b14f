"""resolve_in_root: openat2(RESOLVE_IN_ROOT) semantics."""

from __future__ import annotations

import os

import pytest

from llb.snapshot import PathEscapeError, SnapshotError, resolve_in_root
from llb.snapshot.paths import join_beneath


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "root"
    (r / "etc").mkdir(parents=True)
    (r / "etc/passwd").write_text("inside")
    os.symlink("/etc", r / "abs")           # absolute: means root/etc
    os.symlink("../../../../etc", r / "up")  # climbs: clamped at root
    os.symlink("abs/passwd", r / "chain")
    os.symlink("loop2", r / "loop1")
    os.symlink("loop1", r / "loop2")
    os.symlink("/nonexistent/x", r / "dangling")
    return r


def test_plain_and_dotdot(root):
    assert resolve_in_root(root, "/etc/passwd") == root / "etc/passwd"
    assert resolve_in_root(root, "../../etc/passwd") == root / "etc/passwd"
    assert resolve_in_root(root, "etc/../../..") == root
    assert resolve_in_root(root, "/") == root


def test_symlinks_stay_inside(root):
    assert resolve_in_root(root, "abs/passwd") == root / "etc/passwd"
    assert resolve_in_root(root, "up/passwd") == root / "etc/passwd"
    assert resolve_in_root(root, "chain") == root / "etc/passwd"
    assert resolve_in_root(root, "dangling") == root / "nonexistent/x"
    # ".." out of a missing directory lands on real entries again, symlinks still resolved
    assert resolve_in_root(root, "missing/../abs/passwd") == root / "etc/passwd"
    assert resolve_in_root(root, "dangling/../../abs") == root / "etc"
    for p in ("abs/passwd", "up/passwd", "chain", "dangling/../../.."):
        assert str(resolve_in_root(root, p)).startswith(str(root))


def test_follow_final(root):
    assert resolve_in_root(root, "chain", follow_final=False) == root / "chain"
    assert resolve_in_root(root, "abs/passwd", follow_final=False) == root / "etc/passwd"


def test_missing_components_and_errors(root):
    assert resolve_in_root(root, "new/dir/file") == root / "new/dir/file"
    with pytest.raises(SnapshotError, match="symbolic links"):
        resolve_in_root(root, "loop1/x")
    with pytest.raises(PathEscapeError):
        resolve_in_root(root, "a\x00b")
    with pytest.raises(SnapshotError, match="not a directory"):
        resolve_in_root(root, "etc/passwd/x")


def test_join_beneath_refuses_escapes(root):
    assert join_beneath(root, "etc/passwd") == root / "etc/passwd"
    for bad in ("../x", "/etc", "a/../../x", "a\x00"):
        with pytest.raises(PathEscapeError, match="escapes"):
            join_beneath(root, bad)
