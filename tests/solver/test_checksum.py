"""Content checksums: exactly what a local source or a copy reads, mtimes left out."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from llb.ops import Copy
from llb.solver.checksum import copy_checksum, local_checksum, tree_checksum
from llb.solver.errors import InputError
from llb.solver.patterns import PathFilter, walk


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def test_tree_checksum_follows_content_mode_and_names_not_mtime(tmp_path: Path):
    t = _tree(tmp_path / "t", {"a.txt": "a", "d/b.txt": "b"})
    c0 = tree_checksum(t)
    os.utime(t / "a.txt", (1, 1))
    assert tree_checksum(t) == c0
    (t / "a.txt").chmod(0o600)
    c1 = tree_checksum(t)
    assert c1 != c0
    (t / "d/b.txt").write_text("B")
    assert tree_checksum(t) != c1
    (t / "d/b.txt").write_text("b")
    assert tree_checksum(t) == c1
    os.symlink("a.txt", t / "link")
    assert tree_checksum(t) != c1


def test_local_checksum_covers_only_selected_files(tmp_path: Path):
    t = _tree(tmp_path / "t", {"src/a.py": "1", "src/__pycache__/a.pyc": "x", "README": "r"})
    c = local_checksum(t, include=["src/**"], exclude=["**/__pycache__"])
    (t / "README").write_text("changed")
    (t / "src/__pycache__/a.pyc").write_text("changed")
    assert local_checksum(t, include=["src/**"], exclude=["**/__pycache__"]) == c
    (t / "src/a.py").write_text("2")
    assert local_checksum(t, include=["src/**"], exclude=["**/__pycache__"]) != c


def test_walk_keeps_parents_of_included_files_and_prunes_excluded_dirs(tmp_path: Path):
    t = _tree(tmp_path / "t", {"a/b/c.txt": "1", "a/x.log": "2", "skip/y.txt": "3", "top.txt": "4"})
    rels = [r for r, _ in walk(t, PathFilter(include=["*.txt"], exclude=["skip"]))]
    assert rels == ["a", "a/b", "a/b/c.txt", "top.txt"]
    assert [r for r, _ in walk(t)] == ["a", "a/b", "a/b/c.txt", "a/x.log", "skip", "skip/y.txt",
                                       "top.txt"]


def test_copy_checksum_reads_only_the_copied_path(tmp_path: Path):
    t = _tree(tmp_path / "t", {"app/main.py": "m", "app/util.py": "u", "other.txt": "o"})
    copy = Copy(1, "/app", "/dst")
    c = copy_checksum(t, copy)
    (t / "other.txt").write_text("changed")
    assert copy_checksum(t, copy) == c
    (t / "app/util.py").write_text("changed")
    assert copy_checksum(t, copy) != c
    one = Copy(1, "/app/main.py", "/dst")
    c1 = copy_checksum(t, one)
    (t / "app/util.py").write_text("again")
    assert copy_checksum(t, one) == c1


def test_copy_checksum_with_wildcards_and_patterns(tmp_path: Path):
    t = _tree(tmp_path / "t", {"d/a.txt": "a", "d/b.txt": "b", "d/c.md": "c"})
    wild = Copy(1, "/d/*.txt", "/dst", allow_wildcard=True)
    c = copy_checksum(t, wild)
    (t / "d/c.md").write_text("changed")
    assert copy_checksum(t, wild) == c
    (t / "d/b.txt").write_text("changed")
    assert copy_checksum(t, wild) != c
    excl = Copy(1, "/d", "/dst", exclude=("*.md",))
    c2 = copy_checksum(t, excl)
    (t / "d/c.md").write_text("changed again")
    assert copy_checksum(t, excl) == c2


def test_copy_checksum_of_a_missing_source_is_bad_input(tmp_path: Path):
    t = _tree(tmp_path / "t", {"a": "a"})
    with pytest.raises(InputError, match="copy source /nope not found") as e:
        copy_checksum(t, Copy(1, "/nope", "/x"), vertex="sha256:v")
    assert e.value.exit_code == 2 and e.value.vertex == "sha256:v"
    with pytest.raises(InputError):
        copy_checksum(None, Copy(1, "/a", "/x"))
    empty = Copy(1, "/*.none", "/x", allow_wildcard=True, allow_empty_wildcard=True)
    assert copy_checksum(t, empty) == copy_checksum(None, empty)


def test_copy_checksum_does_not_escape_the_tree(tmp_path: Path):
    outside = _tree(tmp_path / "outside", {"secret": "s"})
    t = _tree(tmp_path / "t", {"x": "x"})
    os.symlink(str(outside), t / "esc")
    with pytest.raises(InputError):
        copy_checksum(t, Copy(1, "/esc/secret", "/x", follow_symlinks=True))
    with pytest.raises(InputError):
        copy_checksum(t, Copy(1, "/../outside/secret", "/x"))


def test_local_file_digests_are_remembered_until_the_file_changes(tmp_path: Path, monkeypatch):
    import time as _time

    from llb.solver import checksum
    from llb.solver.cachedb import CacheDB

    t = _tree(tmp_path / "t", {"a": "a" * 1000, "b": "b"})
    db = CacheDB(tmp_path / "root")
    real = checksum.file_digest
    hashed: list[str] = []

    def counting(path):
        hashed.append(os.path.basename(path))
        return real(path)

    monkeypatch.setattr(checksum, "file_digest", counting)
    later = _time.time() + 10  # both files are older than the racy-write horizon
    monkeypatch.setattr(checksum.time, "time", lambda: later)
    c = local_checksum(t, db=db)
    assert c == local_checksum(t) and sorted(hashed) == ["a", "a", "b", "b"]
    hashed.clear()
    assert local_checksum(t, db=db) == c and hashed == []
    (t / "b").write_text("B")
    c2 = local_checksum(t, db=db)
    assert c2 != c and hashed == ["b"]
    db.close()


def test_copied_files_reuse_digests_of_files_unchanged_since_the_key(tmp_path: Path, monkeypatch):
    """CopiedFiles: a copy's checksum takes the key's digest of a source file that kept its
    identity and was last changed before the memo's horizon; a file rewritten since (even
    with its size and mtime kept) has a new ctime and is hashed from the copy."""
    import shutil
    import time

    from llb.solver import checksum as cs

    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "a").write_bytes(b"aaa")
    (src / "d" / "b").write_bytes(b"bbb")
    time.sleep(2.2)
    memo = cs.FileHashMemo(None, src)
    key = cs.tree_checksum(src, None, memo)
    dest = tmp_path / "dest"
    shutil.copytree(src, dest, symlinks=True)
    hashed: list[str] = []
    real = cs.file_digest
    monkeypatch.setattr(cs, "file_digest", lambda p: hashed.append(p) or real(p))
    assert cs.tree_checksum(dest, None, cs.CopiedFiles(memo, dest)) == key
    assert hashed == []
    st = os.stat(src / "a")
    (src / "a").write_bytes(b"AAA")
    os.utime(src / "a", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert cs.tree_checksum(dest, None, cs.CopiedFiles(memo, dest)) == key  # dest holds aaa
    assert hashed == [str(dest / "a")]
