"""FileOp copy: every option with BuildKit's (fsutil copier) results, on both snapshotters."""

from __future__ import annotations

import os
import stat
import struct
from pathlib import Path

import pytest

from llb.ops import Copy, Mkdir, Mkfile
from llb.solver.ops.file_errors import CopySourceNotFoundError, FileActionError

from filehelp import T1, T2, exists, listing, read, run_file, seed, st  # noqa: F401


# vfs_cap_data v2, effective, permitted = CAP_NET_BIND_SERVICE
CAP = struct.pack("<IIIII", 0x02000001, 1 << 10, 0, 0, 0)


def _src_tree(p: Path):
    (p / "dir/sub").mkdir(parents=True)
    (p / "dir/a.txt").write_bytes(b"A")
    (p / "dir/sub/b.go").write_bytes(b"B")
    (p / "dir/sub/c.txt").write_bytes(b"C")
    os.chown(p / "dir/a.txt", 11, 22)
    os.chmod(p / "dir/a.txt", 0o4751)
    os.chmod(p / "dir/sub", 0o711)
    os.chown(p / "dir/sub", 5, 6)
    os.setxattr(p / "dir/a.txt", "user.note", b"hello")
    os.setxattr(p / "dir/sub", "user.dirnote", b"d")
    (p / "top.txt").write_bytes(b"TOP")
    os.setxattr(p / "top.txt", "security.capability", CAP)
    os.symlink("dir/a.txt", p / "link")
    os.symlink("/dir", p / "dirlink")
    os.link(p / "dir/sub/b.go", p / "dir/hard.go")
    os.mkfifo(p / "dir/fifo")
    os.chmod(p / "dir/fifo", 0o620)
    for rel in ("dir/sub/b.go", "dir/sub/c.txt", "dir/fifo", "dir/a.txt", "top.txt"):
        os.utime(p / rel, ns=(T2, T2), follow_symlinks=False)
    os.utime(p / "link", ns=(T2, T2), follow_symlinks=False)
    os.utime(p / "dir/sub", ns=(T2 + 5, T2 + 5))
    os.utime(p / "dir", ns=(T2 + 7, T2 + 7))


@pytest.fixture
def src(store):
    return seed(store, None, _src_tree)


def cp(store, src, *copies, base=None):
    return run_file(store, base, *copies, sources=(src,))


def test_copy_file_new_path_keeps_metadata(store, src):
    ref = cp(store, src, Copy(1, "/dir/a.txt", "/a.txt"))
    s = st(store, ref, "/a.txt")
    assert read(store, ref, "/a.txt") == b"A"
    assert stat.S_IMODE(s.st_mode) == 0o4751 and (s.st_uid, s.st_gid) == (11, 22)
    assert s.st_mtime_ns == T2
    with store.view(ref) as root:
        assert os.getxattr(Path(root, "a.txt"), "user.note") == b"hello"


def test_copy_keeps_file_capability_after_owner_change(store, src):
    ref = cp(store, src, Copy(1, "/top.txt", "/t", owner="5:5"))
    assert (st(store, ref, "/t").st_uid, st(store, ref, "/t").st_gid) == (5, 5)
    with store.view(ref) as root:
        assert os.getxattr(Path(root, "t"), "security.capability") == CAP


def test_copy_file_into_existing_dir_and_trailing_slash(store, src):
    base = run_file(store, None, Mkdir("/out"))
    ref = cp(store, src, Copy(1, "/top.txt", "/out"), Copy(1, "/top.txt", "/new/"), base=base)
    assert read(store, ref, "/out/top.txt") == b"TOP"
    assert read(store, ref, "/new/top.txt") == b"TOP"
    assert stat.S_IMODE(st(store, ref, "/new").st_mode) == 0o755


def test_copy_file_over_existing_file_replaces_and_parent_untouched(store, src):
    base = run_file(store, None, Mkfile("/t", b"old", mode=0o600))
    ref = cp(store, src, Copy(1, "/top.txt", "/t"), base=base)
    assert read(store, ref, "/t") == b"TOP"
    assert read(store, base, "/t") == b"old"


def test_copy_dir_to_new_path_and_onto_existing_dir(store, src):
    base = run_file(store, None, Mkdir("/exists", mode=0o700, created=T1))
    ref = cp(store, src, Copy(1, "/dir", "/fresh"), Copy(1, "/dir", "/exists"), base=base)
    want = ["fifo", "a.txt", "hard.go", "sub", "sub/b.go", "sub/c.txt"]
    got = listing(store, ref)
    for p in want:
        assert "fresh/" + p in got and "exists/dir/" + p in got
    # a fresh dir takes the source dir's metadata, mtimes restored after its contents
    assert st(store, ref, "/fresh").st_mtime_ns == T2 + 7
    s = st(store, ref, "/fresh/sub")
    assert stat.S_IMODE(s.st_mode) == 0o711 and (s.st_uid, s.st_gid) == (5, 6)
    assert s.st_mtime_ns == T2 + 5
    # the existing destination dir keeps its own mode
    assert stat.S_IMODE(st(store, ref, "/exists").st_mode) == 0o700


def test_copy_dir_to_dest_with_trailing_slash_goes_inside(store, src):
    ref = cp(store, src, Copy(1, "/dir/sub", "/new/"),
             Copy(1, "/dir/sub", "/flat/", copy_dir_contents_only=True))
    got = listing(store, ref)
    assert [p for p in got if p.startswith("new")] == ["new", "new/sub", "new/sub/b.go",
                                                        "new/sub/c.txt"]
    assert [p for p in got if p.startswith("flat")] == ["flat", "flat/b.go", "flat/c.txt"]


def test_copy_dir_contents_only(store, src):
    base = run_file(store, None, Mkdir("/e", mode=0o700), Mkfile("/e/keep", b"k"))
    ref = cp(store, src, Copy(1, "/dir/sub", "/e", copy_dir_contents_only=True),
             Copy(1, "/dir/sub", "/n", copy_dir_contents_only=True), base=base)
    assert sorted(p for p in listing(store, ref) if p.startswith("e")) == [
        "e", "e/b.go", "e/c.txt", "e/keep"]
    assert stat.S_IMODE(st(store, ref, "/e").st_mode) == 0o700
    assert sorted(p for p in listing(store, ref) if p.startswith("n")) == [
        "n", "n/b.go", "n/c.txt"]


def test_copy_nested_existing_dirs_get_source_metadata(store, src):
    base = run_file(store, None, Mkdir("/o/sub", mode=0o777, parents=True))
    ref = cp(store, src, Copy(1, "/dir", "/o", copy_dir_contents_only=True), base=base)
    s = st(store, ref, "/o/sub")
    assert stat.S_IMODE(s.st_mode) == 0o711 and (s.st_uid, s.st_gid) == (5, 6)


def test_copy_hardlinks_symlinks_fifo_preserved(store, src):
    ref = cp(store, src, Copy(1, "/", "/r", copy_dir_contents_only=True))
    b, h = st(store, ref, "/r/dir/sub/b.go"), st(store, ref, "/r/dir/hard.go")
    assert b.st_ino == h.st_ino  # (the store may add links of its own: no nlink check)
    assert st(store, ref, "/r/dir/sub/c.txt").st_ino != b.st_ino
    with store.view(ref) as root:
        assert os.readlink(Path(root, "r/link")) == "dir/a.txt"
        assert os.readlink(Path(root, "r/dirlink")) == "/dir"
    f = st(store, ref, "/r/dir/fifo")
    assert stat.S_ISFIFO(f.st_mode) and stat.S_IMODE(f.st_mode) == 0o620
    assert st(store, ref, "/r/link").st_mtime_ns == T2


def test_copy_follow_symlinks(store, src):
    ref = cp(store, src, Copy(1, "/link", "/nofollow"),
             Copy(1, "/link", "/follow", follow_symlinks=True),
             Copy(1, "/dirlink", "/fdir", follow_symlinks=True))
    assert stat.S_ISLNK(st(store, ref, "/nofollow").st_mode)
    assert read(store, ref, "/follow") == b"A"
    assert read(store, ref, "/fdir/sub/c.txt") == b"C"


def test_copy_missing_source_is_input_error(store, src):
    with pytest.raises(CopySourceNotFoundError) as ei:
        cp(store, src, Copy(1, "/nope/x.txt", "/x"))
    e = ei.value
    assert e.exit_code == 2 and e.path == "/nope/x.txt"
    assert e.vertex and str(e) == "copy /nope/x.txt /x: copy source /nope/x.txt not found"
    with pytest.raises(CopySourceNotFoundError):
        cp(store, src, Copy(1, "/top.txt/below", "/x"))  # below a file


def test_copy_from_scratch_source(store):
    ref = run_file(store, None, Copy(1, "/", "/empty"), sources=(None,))
    assert listing(store, ref) == ["empty"]
    with pytest.raises(CopySourceNotFoundError):
        run_file(store, None, Copy(1, "/a", "/b"), sources=(None,))


def test_copy_dest_parent_required_unless_create_dest_path(store, src):
    with pytest.raises(FileActionError, match="does not exist"):
        cp(store, src, Copy(1, "/top.txt", "/x/y/z.txt"))
    ref = cp(store, src, Copy(1, "/top.txt", "/x/y/z.txt", create_dest_path=True,
                              owner="3:4", created=T1))
    assert read(store, ref, "/x/y/z.txt") == b"TOP"
    for d in ("/x", "/x/y"):
        s = st(store, ref, d)
        assert stat.S_IMODE(s.st_mode) == 0o755 and (s.st_uid, s.st_gid) == (3, 4)
        assert s.st_mtime_ns == T1


def test_copy_wildcards(store, src):
    ref = cp(store, src, Copy(1, "/dir/*.txt", "/w/", allow_wildcard=True),
             Copy(1, "/dir/s?b/*", "/w2/", allow_wildcard=True))
    assert sorted(p for p in listing(store, ref) if p.startswith("w")) == [
        "w", "w/a.txt", "w2", "w2/b.go", "w2/c.txt"]
    with pytest.raises(CopySourceNotFoundError, match=r"/\*\.md"):
        cp(store, src, Copy(1, "/*.md", "/m/", allow_wildcard=True))
    ref = cp(store, src, Copy(1, "/*.md", "/m/", allow_wildcard=True,
                              allow_empty_wildcard=True))
    assert listing(store, ref) == []
    # without allow_wildcard a star is literal
    with pytest.raises(CopySourceNotFoundError):
        cp(store, src, Copy(1, "/dir/*.txt", "/w/"))


def test_copy_include_exclude(store, src):
    ref = cp(store, src, Copy(1, "/dir", "/i", include=("**/*.go",)),
             Copy(1, "/dir", "/e", exclude=("sub", "fifo")),
             Copy(1, "/dir", "/x", exclude=("sub/*", "!sub/c.txt")),
             Copy(1, "/dir", "/y", include=("sub",), exclude=("**/b.go",)),
             Copy(1, "/dir", "/z", exclude=("*.txt",)))
    got = listing(store, ref)
    assert [p for p in got if p.startswith("i")] == ["i", "i/hard.go", "i/sub", "i/sub/b.go"]
    assert [p for p in got if p.startswith("e")] == ["e", "e/a.txt", "e/hard.go"]
    assert [p for p in got if p.startswith("x")] == [
        "x", "x/a.txt", "x/fifo", "x/hard.go", "x/sub", "x/sub/c.txt"]
    assert [p for p in got if p.startswith("y")] == ["y", "y/sub", "y/sub/c.txt"]
    # gitignore-style (the patterns llb.local and the copy's cache key use): any depth
    assert [p for p in got if p.startswith("z")] == [
        "z", "z/fifo", "z/hard.go", "z/sub", "z/sub/b.go"]
    # a directory created late for an included file still gets the source's metadata
    s = st(store, ref, "/i/sub")
    assert stat.S_IMODE(s.st_mode) == 0o711 and s.st_mtime_ns == T2 + 5


def test_copy_mode_owner_created_override(store, src):
    ref = cp(store, src, Copy(1, "/dir", "/o", mode=0o640, owner="100:200", created=T1))
    for p in ("/o", "/o/a.txt", "/o/sub", "/o/sub/b.go"):
        s = st(store, ref, p)
        assert (s.st_uid, s.st_gid) == (100, 200), p
        assert s.st_mtime_ns == T1, p
    assert stat.S_IMODE(st(store, ref, "/o/sub").st_mode) == 0o640
    assert stat.S_IMODE(st(store, ref, "/o/a.txt").st_mode) == 0o4640  # special bits kept


def test_copy_owner_name_from_dest_state(store, src):
    base = run_file(store, None, Mkdir("/etc"),
                    Mkfile("/etc/passwd", b"app:x:901:902::/:/bin/sh\n"),
                    Mkfile("/etc/group", b"grp:x:903:\n"))
    ref = cp(store, src, Copy(1, "/top.txt", "/t", owner="app:grp"), base=base)
    s = st(store, ref, "/t")
    assert (s.st_uid, s.st_gid) == (901, 903)


def test_copy_file_onto_dir_goes_inside_and_dir_onto_file_fails(store, src):
    base = run_file(store, None, Mkdir("/d"), Mkfile("/f", b"x"))
    ref = cp(store, src, Copy(1, "/top.txt", "/d"), base=base)
    assert read(store, ref, "/d/top.txt") == b"TOP"
    with pytest.raises(FileActionError):
        cp(store, src, Copy(1, "/dir", "/f"), base=base)


def test_copy_always_replace_existing(store, src):
    def fill(p):
        (p / "out/a.txt").mkdir(parents=True)
        (p / "out/a.txt/inner").write_bytes(b"i")
        (p / "out/sub").write_bytes(b"file where a dir goes")
    base = seed(store, None, fill)
    with pytest.raises(FileActionError, match="cannot replace directory /out/a.txt"):
        cp(store, src, Copy(1, "/dir", "/out", copy_dir_contents_only=True), base=base)
    ref = cp(store, src, Copy(1, "/dir", "/out", copy_dir_contents_only=True,
                              always_replace_existing=True), base=base)
    assert read(store, ref, "/out/a.txt") == b"A"
    assert read(store, ref, "/out/sub/c.txt") == b"C"
    assert exists(store, base, "/out/a.txt/inner")


def test_copy_reads_same_op_base_input_unchanged(store):
    base = run_file(store, None, Mkfile("/a", b"1"))
    op_src = base  # the copy reads input 1, the committed base, not the tree being built
    ref = run_file(store, base, Mkfile("/a", b"2"), Copy(1, "/a", "/b"), sources=(op_src,))
    assert read(store, ref, "/a") == b"2" and read(store, ref, "/b") == b"1"


def test_copy_stops_when_cancelled_midway(store, src, monkeypatch):
    import threading

    from llb.solver.errors import SolveCancelledError
    from llb.solver.ops import file_copy

    ev = threading.Event()
    seen = []
    orig = file_copy.copy_entry

    def spy(a, b, *args, **kw):
        seen.append(b)
        ev.set()  # another vertex failed while this copy runs
        return orig(a, b, *args, **kw)

    monkeypatch.setattr(file_copy, "copy_entry", spy)
    m = store.prepare(None, trusted=True)
    with store.view(src) as sv, m.mount() as root:
        with pytest.raises(SolveCancelledError):
            file_copy.copy(str(root), str(sv), Copy(1, "/dir", "/o"), None, ev)
    m.discard()
    assert len(seen) == 1
