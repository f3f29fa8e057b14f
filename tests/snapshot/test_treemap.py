"""Tree maps: a directory recorded right after it changed is "racy" (its ctime could be
shared by the next change on a coarse-clock kernel) and is rescanned; an old one is not."""

from __future__ import annotations

import os

import llb.snapshot.treemap as tm
from llb.snapshot.layers import Change


def test_recently_changed_directory_is_rescanned(tmp_path, monkeypatch):
    (tmp_path / "d").mkdir()
    (tmp_path / "d/a").write_bytes(b"a")
    old = tm.build_map(tmp_path)
    assert old["d"].ident[1] == -1  # just written: not trusted to show the next change
    # a coarse clock: the next change keeps the recorded ctime; the racy record still sees it
    st = os.lstat(tmp_path / "d")
    (tmp_path / "d/b").write_bytes(b"b")
    os.utime(tmp_path / "d", ns=(st.st_atime_ns, st.st_mtime_ns))
    changes, new = tm.map_changes(tmp_path, old)
    assert changes == [Change("d/b", "add")]


def test_settled_directory_is_skipped_by_ctime(tmp_path, monkeypatch):
    (tmp_path / "d").mkdir()
    (tmp_path / "d/a").write_bytes(b"a")
    real = tm.time.time_ns
    monkeypatch.setattr(tm.time, "time_ns", lambda: real() + 10**9)  # recorded 1 s later
    old = tm.build_map(tmp_path)
    st = os.lstat(tmp_path / "d")
    assert old["d"].ident == (st.st_ino, st.st_ctime_ns)
    changes, new = tm.map_changes(tmp_path, old)
    assert changes == [] and new["d"] is old["d"]
