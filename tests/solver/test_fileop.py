"""FileOp backend: mkdir, mkfile, rm, owners, names, failure handling and path containment,
on both snapshotters. Copy has its own module (test_fileop_copy.py)."""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis.strategies import text as st_text
from storehelp import overlay_reason

from llb.ops import Copy, FileOp, Input, Mkdir, Mkfile, Rm
from llb.paths import clean
from llb.solver.errors import SolveCancelledError, SolveError
from llb.solver.ops import file as fileop
from llb.solver.ops.file_errors import FileActionError, OwnerError

from filehelp import T1, T2, exists, listing, read, run_file, seed, st  # noqa: F401

# ------------------------------------------------------------------------------ names


def test_names():
    op = FileOp(inputs=(Input("sha256:" + "0" * 64),), actions=(Mkfile("/c/c.txt"),))
    assert fileop.name(op) == "mkfile /c/c.txt"
    op = FileOp(inputs=(), actions=(Copy(1, "/a.txt", "/out/a.txt"),))
    assert fileop.name(op) == "copy /a.txt /out/a.txt"
    op = FileOp(inputs=(), actions=(Mkdir("/a"), Rm("/a/old"), Mkfile("/a/n")))
    assert fileop.name(op) == "mkdir /a, rm /a/old, mkfile /a/n"


# ------------------------------------------------------------------------------ mkdir


def test_mkdir_mode_owner_created(store):
    ref = run_file(store, None, Mkdir("/a", mode=0o750, owner="12:34", created=T1))
    s = st(store, ref, "/a")
    assert stat.S_ISDIR(s.st_mode) and stat.S_IMODE(s.st_mode) == 0o750
    assert (s.st_uid, s.st_gid) == (12, 34)
    assert s.st_mtime_ns == T1  # atime is set too, but reading the tree may bump it


def test_mkdir_exact_mode_not_umasked(store):
    ref = run_file(store, None, Mkdir("/w", mode=0o777), Mkdir("/s", mode=0o1777))
    assert stat.S_IMODE(st(store, ref, "/w").st_mode) == 0o777
    assert stat.S_IMODE(st(store, ref, "/s").st_mode) == 0o777  # BuildKit keeps mode & 0777


def test_mkdir_parents_get_leaf_mode_and_times(store):
    ref = run_file(store, None, Mkdir("/x/y/z", mode=0o701, parents=True, owner="5:6",
                                      created=T1))
    for p in ("/x", "/x/y", "/x/y/z"):
        s = st(store, ref, p)
        assert stat.S_IMODE(s.st_mode) == 0o701, p
        assert (s.st_uid, s.st_gid) == (5, 6), p
        assert s.st_mtime_ns == T1, p


def test_mkdir_existing_changes_nothing(store):
    base = run_file(store, None, Mkdir("/d", mode=0o700, created=T2), Mkfile("/f", b"x",
                                                                            created=T2))
    ref = run_file(store, base, Mkdir("/d", mode=0o755, owner="1:1", created=T1),
                   Mkdir("/f", mode=0o755), Mkdir("/d", mode=0o755, parents=True))
    d = st(store, ref, "/d")
    assert stat.S_IMODE(d.st_mode) == 0o700 and d.st_uid == 0 and d.st_mtime_ns == T2
    assert stat.S_ISREG(st(store, ref, "/f").st_mode) and read(store, ref, "/f") == b"x"


def test_mkdir_parents_over_existing_file_changes_nothing(store):
    base = run_file(store, None, Mkfile("/f", b"x", mode=0o600))
    ref = run_file(store, base, Mkdir("/f", mode=0o755, parents=True))
    s = st(store, ref, "/f")
    assert stat.S_ISREG(s.st_mode) and stat.S_IMODE(s.st_mode) == 0o600
    assert read(store, ref, "/f") == b"x"


def test_mkdir_parents_below_a_file_fails(store):
    base = run_file(store, None, Mkfile("/f", b"x"))
    with pytest.raises(FileActionError) as ei:
        run_file(store, base, Mkdir("/f/sub", parents=True))
    assert ei.value.exit_code == 1 and "/f" in str(ei.value)


def test_mkdir_missing_parent_fails(store):
    with pytest.raises(FileActionError) as ei:
        run_file(store, None, Mkdir("/no/such"))
    e = ei.value
    assert e.vertex == "sha256:" + "ab" * 32 and "mkdir /no/such" in str(e)
    assert "\n" not in str(e)


# ------------------------------------------------------------------------------ mkfile


def test_mkfile_new(store):
    ref = run_file(store, None, Mkfile("/f.txt", b"hello", mode=0o640, owner="7:8",
                                       created=T1))
    s = st(store, ref, "/f.txt")
    assert read(store, ref, "/f.txt") == b"hello"
    assert stat.S_IMODE(s.st_mode) == 0o640 and (s.st_uid, s.st_gid) == (7, 8)
    assert s.st_mtime_ns == T1  # atime is set too, but reading the tree may bump it
    assert listing(store, ref) == ["f.txt"]  # no temp file left behind


def test_mkfile_default_time_is_now(store):
    import time
    before = time.time_ns()
    ref = run_file(store, None, Mkfile("/f", b""))
    assert st(store, ref, "/f").st_mtime_ns >= before - 10_000_000


def test_mkfile_replaces_content_keeps_mode_owner_and_parent_untouched(store):
    def fill(p):
        (p / "f").write_bytes(b"old content")
        os.chmod(p / "f", 0o751)
        os.chown(p / "f", 3, 4)
        os.setxattr(p / "f", "user.k", b"v")
    base = seed(store, None, fill)
    ref = run_file(store, base, Mkfile("/f", b"new", mode=0o600))
    s = st(store, ref, "/f")
    assert read(store, ref, "/f") == b"new"
    assert stat.S_IMODE(s.st_mode) == 0o751 and (s.st_uid, s.st_gid) == (3, 4)
    with store.view(ref) as root:
        assert os.getxattr(Path(root) / "f", "user.k") == b"v"
    # the parent snapshot (possibly sharing inodes with the child) is unchanged
    assert read(store, base, "/f") == b"old content"
    assert st(store, base, "/f").st_ino != s.st_ino or store.kind == "overlayfs"


def test_mkfile_owner_overrides_existing(store):
    base = run_file(store, None, Mkfile("/f", b"a", owner="3:3"))
    ref = run_file(store, base, Mkfile("/f", b"b", owner="9:10"))
    s = st(store, ref, "/f")
    assert (s.st_uid, s.st_gid) == (9, 10)


def test_mkfile_on_directory_fails(store):
    base = run_file(store, None, Mkdir("/d"))
    with pytest.raises(FileActionError, match="is a directory"):
        run_file(store, base, Mkfile("/d", b"x"))


def test_mkfile_missing_parent_fails(store):
    with pytest.raises(FileActionError, match="parent directory"):
        run_file(store, None, Mkfile("/no/f", b"x"))


def test_mkfile_follows_symlink_inside_root(store):
    def fill(p):
        (p / "real").write_bytes(b"old")
        os.symlink("/real", p / "abs")
        os.symlink("real", p / "rel")
    base = seed(store, None, fill)
    ref = run_file(store, base, Mkfile("/abs", b"one"))
    assert read(store, ref, "/real") == b"one"
    assert stat.S_ISLNK(st(store, ref, "/abs").st_mode)
    ref = run_file(store, ref, Mkfile("/rel", b"two"))
    assert read(store, ref, "/real") == b"two"


def test_a_run_of_mkfiles_resolves_each_path_like_a_single_one(store):
    """Consecutive mkfiles share their parents' resolution: symlinked parents, final symlinks,
    a directory in the way and a mkdir between two runs all behave as for one mkfile."""
    def fill(p):
        (p / "real").mkdir()
        (p / "real/target").write_bytes(b"old")
        os.symlink("/real", p / "dirlink")
        os.symlink("/real/target", p / "real/flink")
    base = seed(store, None, fill)
    ref = run_file(store, base, Mkfile("/dirlink/a", b"a"), Mkfile("/dirlink/flink", b"new"),
                   Mkfile("/real/b", b"b", mode=0o600), Mkdir("/real/sub"),
                   Mkfile("/dirlink/sub/c", b"c"), Mkfile("/dirlink/a", b"a2"))
    assert read(store, ref, "/real/a") == b"a2" and read(store, ref, "/real/target") == b"new"
    assert stat.S_ISLNK(st(store, ref, "/real/flink").st_mode)
    assert stat.S_IMODE(st(store, ref, "/real/b").st_mode) == 0o600
    assert read(store, ref, "/real/sub/c") == b"c" and not exists(store, ref, "/dirlink/x")
    old = os.umask(0o077)
    try:  # modes the umask would change, owners, and a set-group-ID parent's group not lent
        def setgid_dir(p):
            (p / "sg").mkdir()
            os.chown(p / "sg", 0, 77)
            os.chmod(p / "sg", 0o2775)
        ref = run_file(store, seed(store, None, setgid_dir),
                       Mkfile("/sg/m", b"m", mode=0o666), Mkfile("/sg/o", b"o", owner="5:6"))
    finally:
        os.umask(old)
    assert st(store, ref, "/sg").st_mode & stat.S_ISGID
    m, o = st(store, ref, "/sg/m"), st(store, ref, "/sg/o")
    assert (stat.S_IMODE(m.st_mode), m.st_uid, m.st_gid) == (0o666, 0, 0)
    assert (stat.S_IMODE(o.st_mode), o.st_uid, o.st_gid) == (0o644, 5, 6)
    with pytest.raises(FileActionError, match="parent directory"):
        run_file(store, base, Mkfile("/real/x", b"x"), Mkfile("/real/no/y", b"y"))
    with pytest.raises(FileActionError, match="is a directory"):
        run_file(store, base, Mkfile("/real/x", b"x"), Mkfile("/dirlink", b"y"))


def test_a_run_of_mkfiles_with_unclean_paths_and_big_contents(store):
    """The backend takes an op that never went through a definition's validation: paths
    with doubled slashes, `.` and `..`, a trailing slash, hidden names, all resolve as a
    clean path would; contents bigger than one write are written whole."""
    base = seed(store, None, lambda p: (p / "d").mkdir())
    big = os.urandom(3 << 20)
    ref = run_file(store, base, Mkfile("//d//a", b"a"), Mkfile("/d/./b", b"b"),
                   Mkfile("/x/../d/c", b"c"), Mkfile("/d/e/", b"e"), Mkfile("/d/.f", b"f"),
                   Mkfile("/d/..g", b"g"), Mkfile("/d/big", big))
    assert listing(store, ref) == ["d", "d/..g", "d/.f", "d/a", "d/b", "d/big", "d/c", "d/e"]
    assert [read(store, ref, f"/d/{n}") for n in ("a", "b", "c", "e", ".f", "..g")] == \
        [b"a", b"b", b"c", b"e", b"f", b"g"]
    assert read(store, ref, "/d/big") == big


def _default_acl(user: int, group: int, other: int) -> bytes:
    """A POSIX default ACL (system.posix_acl_default's binary form) of the three base
    entries only."""
    import struct

    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", tag, perm, 0xFFFFFFFF)
                                           for tag, perm in ((0x01, user), (0x04, group),
                                                             (0x20, other)))


def test_a_long_run_of_new_files_gets_exact_contents_modes_owners_and_links(store):
    """A run of plain mkfiles into directories resolved before (created in one loop, no
    fstat each): every file as a single mkfile would leave it, also where the directory
    gives new files another group (set-group-ID) or mode (a default ACL), where a name is
    there already, and where a mode has bits the umask takes away."""
    def fill(p):
        for d in ("plain", "sg", "acl"):
            (p / d).mkdir()
        os.chown(p / "sg", 0, 77)
        os.chmod(p / "sg", 0o2775)
        os.setxattr(p / "acl", "system.posix_acl_default", _default_acl(7, 5, 0))
        (p / "plain" / "f5").write_bytes(b"old")
        os.chmod(p / "plain" / "f5", 0o700)
    base = seed(store, None, fill)
    acts = []
    for d in ("plain", "sg", "acl"):
        acts += [Mkfile(f"/{d}/f{i}", f"{d} {i}".encode() * (i + 1),
                        mode=(0o644, 0o600, 0o755, 0o666)[i % 4]) for i in range(40)]
    ref = run_file(store, base, *acts)
    links = st(store, ref, "/plain/f0").st_nlink  # (the first of a directory: the general way)
    for d in ("plain", "sg", "acl"):
        assert listing(store, ref).count(d) == 1
        for i in range(40):
            s = st(store, ref, f"/{d}/f{i}")
            assert read(store, ref, f"/{d}/f{i}") == f"{d} {i}".encode() * (i + 1)
            if d == "plain" and i == 5:  # replaced: keeps its mode
                assert stat.S_IMODE(s.st_mode) == 0o700
            else:
                assert stat.S_IMODE(s.st_mode) == (0o644, 0o600, 0o755, 0o666)[i % 4], (d, i)
            assert (s.st_uid, s.st_gid, s.st_nlink) == (0, 0, links), (d, i)
    assert sorted(os.path.basename(n) for n in listing(store, ref) if n.startswith("plain/")) \
        == sorted(f"f{i}" for i in range(40))  # no temp file left
    assert read(store, base, "/plain/f5") == b"old"


def test_a_run_of_new_files_stops_where_a_name_fails_and_says_why(store):
    base = run_file(store, None, Mkdir("/d"), Mkfile("/d/a", b"a"))
    long = "x" * 300
    with pytest.raises(FileActionError, match="too long") as e:
        run_file(store, base, Mkfile("/d/b", b"b"), Mkfile("/d/c", b"c"),
                 Mkfile(f"/d/{long}", b"x"), Mkfile("/d/e", b"e"))
    assert e.value.path == f"/d/{long}"


def test_new_files_looks_at_cancellation_every_64_files(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    acts = tuple(Mkfile(f"/d/f{i}", b"x") for i in range(200))
    calls = []

    def cancelled():
        calls.append(1)
        return len(calls) == 2

    done = fileop._new_files(str(tmp_path), acts, 0, {"/d": str(d)}, fileop._Dirs(),
                             cancelled)
    if os.geteuid() or os.getegid():
        assert done == 0
        return
    assert done == 128 and len(calls) == 2
    assert sorted(os.listdir(d)) == sorted(f"f{i}" for i in range(128))


# ------------------------------------------------------------------------------ rm


def test_rm_file_dir_symlink_and_missing(store):
    def fill(p):
        (p / "d/sub").mkdir(parents=True)
        (p / "d/sub/f").write_bytes(b"x")
        (p / "keep").write_bytes(b"k")
        os.symlink("/keep", p / "link")
        (p / "f").write_bytes(b"f")
    base = seed(store, None, fill)
    ref = run_file(store, base, Rm("/d"), Rm("/link"), Rm("/f"), Rm("/missing"),
                   Rm("/missing/deeper"), Rm("/f/below-a-file"))
    assert listing(store, ref) == ["keep"]
    assert read(store, ref, "/keep") == b"k"
    assert listing(store, base) == ["d", "d/sub", "d/sub/f", "f", "keep", "link"]


def test_a_run_of_rms_and_mkfiles_resolves_each_path_like_a_single_one(store):
    """Consecutive rm and mkfile actions share their parents' resolution: removing a
    symlink or a directory on the way to a path resolved before is seen by the next ones."""
    def fill(p):
        (p / "real/sub").mkdir(parents=True)
        for n in ("a", "b", "sub/c", "sub/d"):
            (p / "real" / n).write_bytes(n.encode())
        os.symlink("/real", p / "dirlink")
        (p / "other").mkdir()
        (p / "other/a").write_bytes(b"other a")
    base = seed(store, None, fill)
    ref = run_file(store, base, Rm("/dirlink/a"), Rm("/dirlink/sub/c"), Rm("/dirlink"),
                   Rm("/dirlink/b"), Mkfile("/real/n", b"n"), Rm("/real/sub"),
                   Rm("/real/sub/d"), Mkfile("/other/x", b"x"), Rm("/other/a"))
    assert listing(store, ref) == ["other", "other/x", "real", "real/b", "real/n"]
    ref = run_file(store, base, Mkfile("/dirlink/sub/e", b"e"), Rm("/dirlink"),
                   Mkfile("/dirlink", b"now a file"), Rm("/real/sub/e"))
    assert read(store, ref, "/dirlink") == b"now a file"
    assert not exists(store, ref, "/real/sub/e")
    with pytest.raises(FileActionError, match="parent directory"):
        run_file(store, base, Mkfile("/real/sub/e", b"e"), Rm("/real/sub"),
                 Mkfile("/real/sub/f", b"f"))


def _tree(store, ref):
    """Every entry of ref's tree: (type, mode, owner, content or link target), by path."""
    with store.view(ref) as root:
        out = {}
        for rel in listing(store, ref):
            p = Path(root) / rel
            s = os.lstat(p)
            what = (p.read_bytes() if stat.S_ISREG(s.st_mode) else
                    os.readlink(p) if stat.S_ISLNK(s.st_mode) else None)
            out[rel] = (stat.S_IFMT(s.st_mode), stat.S_IMODE(s.st_mode), s.st_uid, s.st_gid, what)
        return out


def test_an_op_of_rms_deletes_without_preparing_a_tree(store):
    """An op made only of plain rm actions is a layer of deletions (Store.delete_paths): no
    mutable is prepared, and the tree is the one the general way gives."""
    def fill(p):
        (p / "data/sub").mkdir(parents=True)
        for i in range(6):
            (p / f"data/f{i}").write_bytes(b"%d" % i)
        (p / "data/sub/x").write_bytes(b"x")
        os.chmod(p / "data", 0o750)
        os.symlink("/data", p / "link")
        (p / "top").write_bytes(b"t")
    base = seed(store, None, fill)
    rms = (Rm("/data/f0"), Rm("data/./f2"), Rm("/data/sub/x"), Rm("/data/sub"),
           Rm("/data/sub/gone"), Rm("/top/below"), Rm("/link"), Rm("/link/f4"),
           Rm("/missing", allow_wildcard=True))
    cs = _CountingStore(store)
    ref = run_file(cs, base, *rms)
    assert cs.events == [("delete_paths", ["data/f0", "data/f2", "data/sub/x", "data/sub",
                                           "data/sub/gone", "top/below", "link", "link/f4",
                                           "missing"], True)]
    general = run_file(store, base, Mkdir("/top"), *rms)  # a mkdir that changes nothing
    assert _tree(store, ref) == _tree(store, general)
    assert sorted(_tree(store, ref)) == ["data", "data/f1", "data/f3", "data/f4", "data/f5",
                                         "top"]
    assert stat.S_IMODE(st(store, ref, "/data").st_mode) == 0o750


@settings(max_examples=300, deadline=None)
@given(st_text(alphabet="/.a\x00", max_size=8))
def test_an_op_of_rms_takes_each_path_as_clean_makes_it(path):
    """_removals passes a path that is clean already as it is and cleans the others: the
    same relative path either way, and none (the general way) for / or a NUL."""
    got = fileop._removals((Rm(path),))
    want = clean("/" + path)
    assert got == (None if want == "/" or "\x00" in want else [want[1:]])


def test_rms_through_a_symlinked_parent_take_the_general_way(store):
    def fill(p):
        (p / "real").mkdir()
        (p / "real/a").write_bytes(b"a")
        (p / "real/b").write_bytes(b"b")
        os.symlink("/real", p / "dirlink")
    base = seed(store, None, fill)
    cs = _CountingStore(store)
    ref = run_file(cs, base, Rm("/real/b"), Rm("/dirlink/a"), Rm("/dirlink"))
    assert cs.events == [("delete_paths", ["real/b", "dirlink/a", "dirlink"], False),
                         ("prepare", True), "commit"]
    assert listing(store, ref) == ["real"]  # /dirlink/a removed /real/a


def test_an_rm_the_store_cannot_look_up_fails_as_the_general_way_says(store):
    base = seed(store, None, lambda p: (p / "f").write_bytes(b"f"))
    with pytest.raises(FileActionError, match=r"rm /x+: File name too long"):
        run_file(store, base, Rm("/f"), Rm("/" + "x" * 300))
    assert listing(store, base) == ["f"]


def test_rm_wildcard(store):
    def fill(p):
        for n in ("a.txt", "b.txt", "c.log"):
            (p / n).write_bytes(b"x")
        (p / "d").mkdir()
        (p / "d/e.txt").write_bytes(b"x")
    base = seed(store, None, fill)
    ref = run_file(store, base, Rm("/*.txt", allow_wildcard=True))
    assert listing(store, ref) == ["c.log", "d", "d/e.txt"]
    ref = run_file(store, base, Rm("/d/*", allow_wildcard=True))
    assert listing(store, ref) == ["a.txt", "b.txt", "c.log", "d"]


def test_rm_wildcard_matching_nothing(store):
    base = run_file(store, None, Mkfile("/a", b""))
    with pytest.raises(FileActionError, match=r"no match for /\*\.txt"):
        run_file(store, base, Rm("/*.txt", allow_wildcard=True))
    with pytest.raises(FileActionError):
        run_file(store, base, Rm("/nodir/*", allow_wildcard=True))
    ref = run_file(store, base, Rm("/*.txt", allow_wildcard=True, allow_not_found=True),
                   Rm("/nodir/*", allow_wildcard=True, allow_not_found=True))
    assert listing(store, ref) == ["a"]


def test_rm_without_allow_wildcard_is_literal(store):
    def fill(p):
        (p / "*.txt").write_bytes(b"star")
        (p / "a.txt").write_bytes(b"a")
    base = seed(store, None, fill)
    ref = run_file(store, base, Rm("/*.txt"))
    assert listing(store, ref) == ["a.txt"]


def test_rm_root_refused(store):
    with pytest.raises(FileActionError):
        run_file(store, None, Rm("/"))


# ------------------------------------------------------------------------------ owners


def _etc(p):
    (p / "etc").mkdir()
    (p / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n"
                                  "# comment\nalice:x:1000:1001:Alice:/home/alice:/bin/sh\n")
    (p / "etc/group").write_text("root:x:0:\nstaff:x:50:alice\n")


def test_owner_names_resolved_in_state(store):
    base = seed(store, None, _etc)
    ref = run_file(store, base,
                   Mkfile("/u", b"", owner="alice"),
                   Mkfile("/ug", b"", owner="alice:staff"),
                   Mkfile("/n", b"", owner="42"),
                   Mkfile("/ng", b"", owner="42:staff"),
                   Mkdir("/d", owner="1000:7"))
    got = {p: (st(store, ref, p).st_uid, st(store, ref, p).st_gid)
           for p in ("/u", "/ug", "/n", "/ng", "/d")}
    assert got == {"/u": (1000, 1001), "/ug": (1000, 50), "/n": (42, 42), "/ng": (42, 50),
                   "/d": (1000, 7)}


def test_owner_reads_passwd_written_earlier_in_same_op(store):
    ref = run_file(store, None, Mkdir("/etc"),
                   Mkfile("/etc/passwd", b"bob:x:77:88::/:/bin/sh\n"),
                   Mkfile("/b", b"", owner="bob"))
    assert (st(store, ref, "/b").st_uid, st(store, ref, "/b").st_gid) == (77, 88)


def test_owner_unknown_name_is_input_error(store):
    base = seed(store, None, _etc)
    with pytest.raises(OwnerError) as ei:
        run_file(store, base, Mkfile("/u", b"", owner="mallory"))
    assert ei.value.exit_code == 2 and "mallory" in str(ei.value)
    with pytest.raises(OwnerError, match="nogroup"):
        run_file(store, base, Mkfile("/u", b"", owner="alice:nogroup"))
    with pytest.raises(OwnerError):  # no /etc/passwd at all
        run_file(store, None, Mkfile("/u", b"", owner="alice"))


# ------------------------------------------------------------------------------ commit/discard


class _CountingStore:
    """Wraps a Store and records what happens to the mutables it prepares."""

    def __init__(self, inner):
        self.inner, self.events, self.kind = inner, [], inner.kind

    def prepare(self, parent, *, trusted=False):
        m = self.inner.prepare(parent, trusted=trusted)
        self.events.append(("prepare", trusted))
        outer = self

        class M:
            def mount(self):
                return m.mount()

            def commit(self):
                outer.events.append("commit")
                return m.commit()

            def discard(self):
                outer.events.append("discard")
                return m.discard()
        return M()

    def view(self, ref):
        return self.inner.view(ref)

    def delete_paths(self, parent, paths):
        ref = self.inner.delete_paths(parent, paths)
        self.events.append(("delete_paths", list(paths), ref is not None))
        return ref


def test_failure_discards_and_success_commits(store):
    cs = _CountingStore(store)
    with pytest.raises(SolveError):
        run_file(cs, None, Mkfile("/a", b"x"), Mkfile("/missing/b", b"y"))
    assert cs.events == [("prepare", True), "discard"]
    cs.events.clear()
    run_file(cs, None, Mkfile("/a", b"x"))
    assert cs.events == [("prepare", True), "commit"]


def test_cancelled_before_actions(store):
    cs = _CountingStore(store)
    with pytest.raises(SolveCancelledError):
        run_file(cs, None, Mkfile("/a", b"x"), cancelled=True)
    assert cs.events == [("prepare", True), "discard"]


def test_actions_apply_in_order(store):
    ref = run_file(store, None, Mkdir("/a"), Mkfile("/a/f", b"1"), Mkfile("/a/f", b"2"),
                   Rm("/a/f"), Mkfile("/a/g", b"3"))
    assert listing(store, ref) == ["a", "a/g"] and read(store, ref, "/a/g") == b"3"


# ------------------------------------------------------------------------------ containment


def _escapes(p):
    os.symlink("/", p / "rootlink")
    os.symlink("../../../../../../..", p / "up")
    (p / "d").mkdir()
    os.symlink("../up/etc", p / "d/chain")
    os.symlink("/d/chain", p / "abschain")


@pytest.fixture
def outside(tmp_path):
    d = tmp_path / "outside"
    d.mkdir()
    (d / "victim").write_bytes(b"safe")
    return d


def test_dotdot_stays_inside(store, outside):
    rel = "/../../../../../../../.." + str(outside)
    ref = run_file(store, None, Mkdir(rel, parents=True), Mkfile(rel + "/victim", b"evil"))
    assert (outside / "victim").read_bytes() == b"safe"
    assert read(store, ref, str(outside) + "/victim") == b"evil"


def test_symlink_escapes_contained_for_every_action(store, outside):
    base = seed(store, None, _escapes)
    o = str(outside)
    ref = run_file(store, base,
                   Mkdir("/rootlink" + o, parents=True),
                   Mkfile("/rootlink" + o + "/victim", b"evil1"),
                   Mkdir("/up" + o, parents=True),
                   Mkfile("/up" + o + "/victim", b"evil2"),
                   Mkdir("/etc"),
                   Mkfile("/abschain/passwd", b"inside"),
                   Rm("/up" + o + "/nothing"))
    assert (outside / "victim").read_bytes() == b"safe"
    assert read(store, ref, o + "/victim") == b"evil2"
    assert read(store, ref, "/etc/passwd") == b"inside"  # ../up/etc resolved inside the root
    # rm through escaping links removes the in-root path only
    ref2 = run_file(store, ref, Rm("/up" + o + "/victim"), Rm("/rootlink" + o))
    assert (outside / "victim").read_bytes() == b"safe"
    assert not exists(store, ref2, o)


def test_copy_escapes_contained(store, outside):
    src = seed(store, None, lambda p: (_escapes(p), (p / "data").write_bytes(b"d")))
    o = str(outside)
    base = seed(store, None, _escapes)
    ref = run_file(store, base,
                   Copy(1, "/up/data", "/rootlink" + o + "/victim", create_dest_path=True),
                   Copy(1, "/abschain/../../data", "/up/x", create_dest_path=True),
                   sources=(src,))
    assert (outside / "victim").read_bytes() == b"safe"
    assert read(store, ref, o + "/victim") == b"d"
    assert read(store, ref, "/x") == b"d"


# ------------------------------------------------------------------------------ end to end


@pytest.mark.parametrize("kind", ["overlayfs", "native"])
def test_design_example_through_solver_and_local_export(kind, tmp_path):
    import llb
    from llb.solver.exporters.local import export_local
    from llb.solver.solve import Solver

    if kind == "overlayfs" and overlay_reason(tmp_path):
        pytest.skip(overlay_reason(tmp_path))
    ctxdir = tmp_path / "ctx"
    (ctxdir / "src/pkg").mkdir(parents=True)
    (ctxdir / "src/pkg/m.py").write_bytes(b"print(1)\n")
    (ctxdir / "other.txt").write_bytes(b"not copied")
    ctx = llb.local("context")
    f = llb.scratch().file(llb.mkdir("/a", mode=0o755, parents=True)
                           .mkfile("/a/b.txt", b"data", mode=0o644)
                           .copy(ctx, "/src", "/app/src", create_dest_path=True)
                           .rm("/a/old", allow_not_found=True))
    with Solver(tmp_path / "root", kind) as solver:
        res = solver.solve(f.to_definition(), {"context": ctxdir})
        export_local(res.store, res.ref, tmp_path / "out")
    out = tmp_path / "out"
    got = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    assert got == ["a", "a/b.txt", "app", "app/src", "app/src/pkg", "app/src/pkg/m.py"]
    assert (out / "a/b.txt").read_bytes() == b"data"
    assert stat.S_IMODE(os.lstat(out / "a/b.txt").st_mode) == 0o644
    assert (out / "app/src/pkg/m.py").read_bytes() == b"print(1)\n"


# ------------------------------------------------------------------------------ one at a time


@pytest.mark.parametrize("kind", ["native", "overlayfs"])
def test_a_solves_fileops_run_one_at_a_time_each_started_when_it_runs(kind, tmp_path,
                                                                       monkeypatch):
    """Four independent FileOps on four scheduler threads take turns (fileop.TURN, taken by
    the scheduler): no two run at once, each op's "start" comes when it runs (after the one
    before it has returned: its duration is its own), and the merged result is whole."""
    import llb
    from llb.solver.exporters.local import export_local
    from llb.solver.progress import Recorder
    from llb.solver.solve import Solver

    if kind == "overlayfs" and overlay_reason(tmp_path):
        pytest.skip(overlay_reason(tmp_path))
    active, most = [0], [0]
    ran: dict[str, tuple[float, float]] = {}  # vertex -> when its run began and returned
    count = threading.Lock()
    real = fileop.run

    def counted(ctx, op, inputs):
        began = time.time()  # (the clock of progress events)
        with count:
            active[0] += 1
            most[0] = max(most[0], active[0])
        try:
            return real(ctx, op, inputs)
        finally:
            with count:
                active[0] -= 1
            ran[ctx.vertex] = (began, time.time())

    monkeypatch.setattr(fileop, "run", counted)
    parts = []
    for k in range(4):
        acts = llb.mkdir(f"/d{k}")
        for j in range(60):
            acts = acts.mkfile(f"/d{k}/f{j}", f"{k}.{j}".encode())
        parts.append(llb.scratch().file(acts))
    rec = Recorder()
    with Solver(tmp_path / "root", kind, progress=rec, workers=4) as solver:
        res = solver.solve(llb.merge(parts).to_definition())
        export_local(res.store, res.ref, tmp_path / "out")
    assert most[0] == 1
    starts = sorted((e["time"], e["vertex"]) for e in rec.events
                    if e["event"] == "start" and e["name"].startswith("mkdir /d"))
    assert len(starts) == 4 and sorted(v for _, v in starts) == sorted(ran)
    # causal, so exact: a start is emitted before its op runs, and only once the turn is
    # free, which is after the op before it returned
    for (t, v), (t_next, _) in zip(starts, starts[1:]):
        assert t <= ran[v][0] and ran[v][1] <= t_next
    for k in range(4):
        got = sorted(p.name for p in (tmp_path / "out" / f"d{k}").iterdir())
        assert got == sorted(f"f{j}" for j in range(60))
        assert (tmp_path / "out" / f"d{k}" / "f59").read_bytes() == f"{k}.59".encode()
