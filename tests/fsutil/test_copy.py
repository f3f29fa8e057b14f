"""llb.fsutil copies: one entry, a tree (at depth), metadata onto a path or an fd, the byte
mover's fallbacks, and the one errno policy."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

import llb.fsutil.data as data
from deephelp import make_chain
from llb.fsutil import (
    Meta, PathTooLongError, apply_meta, copy_data, copy_entry, copy_tree, creds,
    read_xattrs, remove_tree, walk,
)
from llb.fsutil.policy import xattr_refused
from signalhelp import interrupt_thread_starts

pytestmark = pytest.mark.usefixtures("no_deep_leftovers")
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="chown and mknod need root")


def _pic(root: Path) -> dict[str, tuple]:
    out = {}
    for e in walk(root):
        st = e.st
        kind = stat.S_IFMT(st.st_mode)
        body = None
        if stat.S_ISREG(st.st_mode):
            body = os.read(fd := os.open(e.name, os.O_RDONLY, dir_fd=e.dir_fd), 1 << 20)
            os.close(fd)
        elif stat.S_ISLNK(st.st_mode):
            body = os.readlink(e.name, dir_fd=e.dir_fd)
        out[e.rel] = (kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_rdev,
                      None if e.is_dir else st.st_mtime_ns, body,
                      read_xattrs(e.name, dir_fd=e.dir_fd))
    return out


@root_only
@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_copy_entry_of_every_type_keeps_its_metadata(tmp_path, umask):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    (src / "f").write_bytes(b"data")
    os.chmod(src / "f", 0o4755)
    os.chown(src / "f", 1000, 1000)
    os.setxattr(src / "f", "user.k", b"v")
    os.symlink("f", src / "l")
    os.lchown(src / "l", 7, 8)
    os.mkfifo(src / "p", 0o640)
    os.mknod(src / "c", stat.S_IFCHR | 0o620, os.makedev(1, 3))
    for name in os.listdir(src):
        os.utime(src / name, ns=(5, 1_700_000_000_123_456_789), follow_symlinks=False)
    old = os.umask(umask)
    try:
        for name in sorted(os.listdir(src)):
            copy_entry(str(src / name), str(dst / name), os.lstat(src / name), creds=creds())
    finally:
        os.umask(old)
    assert _pic(dst) == _pic(src)


def test_copy_entry_relative_to_dir_fds_and_with_a_meta_override(tmp_path):
    (tmp_path / "f").write_bytes(b"x" * 100)
    sfd = os.open(tmp_path, os.O_RDONLY)
    try:
        meta = Meta(stat.S_IFREG | 0o600, os.geteuid(), os.getegid(), 10**9, 2 * 10**9,
                    {"user.a": b"1"})
        copy_entry("f", "g", os.lstat(tmp_path / "f"), src_dir_fd=sfd, dst_dir_fd=sfd,
                   meta=meta)
    finally:
        os.close(sfd)
    st = os.lstat(tmp_path / "g")
    assert (stat.S_IMODE(st.st_mode), st.st_mtime_ns, st.st_atime_ns) == (0o600, 10**9, 2 * 10**9)
    assert (tmp_path / "g").read_bytes() == b"x" * 100
    assert read_xattrs(str(tmp_path / "g")) == {"user.a": b"1"}


def test_apply_meta_by_dir_fd_reaches_entries_below_path_max(tmp_path):
    """xattrs and times of a name deeper than PATH_MAX, through its directory's fd."""
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(25):  # 5000 bytes of path
        os.mkdir("d" * 200, dir_fd=fd)
        sub = os.open("d" * 200, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = sub
    try:
        os.close(os.open("f", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
        os.symlink("f", "l", dir_fd=fd)
        apply_meta("f", Meta(stat.S_IFREG | 0o640, os.geteuid(), os.getegid(), 7, 7,
                             {"user.deep": b"yes"}), dir_fd=fd)
        # user.* xattrs are refused on a symlink: skipped by the policy, times still set
        apply_meta("l", Meta(stat.S_IFLNK | 0o777, os.geteuid(), os.getegid(), 9, 9,
                             {"user.x": b"no"}), dir_fd=fd)
        assert read_xattrs("f", dir_fd=fd) == {"user.deep": b"yes"}
        st = os.stat("f", dir_fd=fd)
        assert (stat.S_IMODE(st.st_mode), st.st_mtime_ns) == (0o640, 7)
        assert os.stat("l", dir_fd=fd, follow_symlinks=False).st_mtime_ns == 9
    finally:
        os.close(fd)


@pytest.mark.parametrize("refuse", ["none", "copy_file_range", "sendfile"])
@pytest.mark.parametrize("size", [10, 200_000])
def test_copy_data_falls_back_through_every_way(tmp_path, monkeypatch, refuse, size):
    body = os.urandom(size)
    (tmp_path / "in").write_bytes(body)

    def refused(*a, **k):
        raise OSError(errno.EXDEV if refuse == "copy_file_range" else errno.EINVAL, "no")

    if refuse != "none":
        monkeypatch.setattr(data.os, "copy_file_range", refused)
    if refuse == "sendfile":
        monkeypatch.setattr(data.os, "sendfile", refused)
    monkeypatch.setattr(data, "SMALL_FILE", 0)  # every size through the ways
    fin = os.open(tmp_path / "in", os.O_RDONLY)
    fout = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        copy_data(fin, fout, size)
    finally:
        os.close(fin)
        os.close(fout)
    assert (tmp_path / "out").read_bytes() == body


def test_copy_data_keeps_holes(tmp_path):
    with open(tmp_path / "in", "wb") as f:
        f.write(b"head")
        f.seek(16 << 20)
        f.write(b"tail")
        f.seek(32 << 20)
        f.truncate()
    st = os.lstat(tmp_path / "in")
    fin = os.open(tmp_path / "in", os.O_RDONLY)
    fout = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        copy_data(fin, fout, st.st_size, st.st_blocks)
    finally:
        os.close(fin)
        os.close(fout)
    out = os.lstat(tmp_path / "out")
    assert out.st_size == 32 << 20 and out.st_blocks * 512 < 1 << 20
    assert (tmp_path / "out").read_bytes() == (tmp_path / "in").read_bytes()


def test_the_policy_names_what_may_be_skipped():
    assert xattr_refused(OSError(errno.EOPNOTSUPP, "x"))
    assert xattr_refused(OSError(errno.EPERM, "x"))
    assert not xattr_refused(OSError(errno.EIO, "x"))
    assert not xattr_refused(OSError(errno.ENOSPC, "x"))


def test_copy_tree_into_an_existing_directory_replaces_what_is_in_the_way(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "d").mkdir(parents=True)
    (src / "d" / "f").write_text("new")
    (src / "x").mkdir()
    (dst / "d").mkdir(parents=True)
    (dst / "d" / "keep").write_text("keep")
    (dst / "d" / "f").mkdir()  # a directory where a file goes
    (dst / "x").write_text("file where a directory goes")
    copy_tree(src, dst, into=True)
    assert (dst / "d" / "f").read_text() == "new"
    assert (dst / "d" / "keep").read_text() == "keep"
    assert (dst / "x").is_dir()


def test_copy_tree_only_copies_the_selection_and_links_on_request(tmp_path):
    src = tmp_path / "src"
    (src / "a" / "b").mkdir(parents=True)
    (src / "a" / "b" / "in").write_text("in")
    (src / "a" / "out").write_text("out")
    (src / "top").write_text("top")
    copy_tree(src, tmp_path / "sel", only={"a", "a/b", "a/b/in"})
    assert sorted(e.rel for e in walk(tmp_path / "sel")) == ["a", "a/b", "a/b/in"]
    copy_tree(src, tmp_path / "lnk", link=True)
    assert os.lstat(tmp_path / "lnk" / "top").st_ino == os.lstat(src / "top").st_ino


def test_copy_tree_of_a_deep_chain_and_a_clear_error_beyond_path_max(tmp_path):
    src = tmp_path / "s"
    src.mkdir()
    make_chain(src, 1100)  # deeper than the recursion limit, 2200 bytes: copied
    copy_tree(src, tmp_path / "d")
    assert sum(1 for _ in walk(tmp_path / "d")) == 1101
    far = tmp_path / "far"
    far.mkdir()
    make_chain(far, 25, "n" * 200)  # 5000 bytes of path: beyond what a path can name
    with pytest.raises(PathTooLongError, match="PATH_MAX"):
        copy_tree(far, tmp_path / "e")


@pytest.mark.parametrize("workers", [1, 4])
def test_copy_tree_of_a_big_directory_in_parts_keeps_everything(tmp_path, monkeypatch, workers):
    """A directory of more than SPLIT entries is copied in parts on several threads: every
    entry, hardlinks among its files (across parts) and its directories' metadata kept."""
    import llb.fsutil.tree as tree

    monkeypatch.setattr(tree, "SPLIT", 16)
    src = tmp_path / "src"
    (src / "big" / "sub").mkdir(parents=True)
    for i in range(100):
        (src / "big" / f"f{i:03}").write_bytes(b"%d" % i)
        os.chmod(src / "big" / f"f{i:03}", 0o600 + i % 8)
    for i in range(0, 100, 10):
        os.link(src / "big" / "f000", src / "big" / f"h{i:03}")
    (src / "big" / "sub" / "x").write_text("x")
    os.chmod(src / "big", 0o750)
    os.utime(src / "big", ns=(1, 2_000_000_000))
    copy_tree(src, tmp_path / "dst", workers=workers)
    assert _pic(tmp_path / "dst") == _pic(src)
    assert os.lstat(tmp_path / "dst" / "big").st_mtime_ns == 2_000_000_000
    first = os.lstat(tmp_path / "dst" / "big" / "f000")
    assert first.st_nlink == 11
    assert all(os.lstat(tmp_path / "dst" / "big" / f"h{i:03}").st_ino == first.st_ino
               for i in range(0, 100, 10))


@root_only
@pytest.mark.parametrize("umask", [0o022, 0o077])
@pytest.mark.parametrize("workers", [1, 2])
def test_copy_tree_small_files_keep_every_kind_of_metadata(tmp_path, umask, workers):
    """copy_tree copies a small regular file in its loop, setting only its times when the
    creation gave it the rest; every file that needs more (another owner, set-id bits, bits
    the umask took, xattrs, holes, an empty file, links within and outside the tree) ends
    the same as its source, its link count included."""
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    files = {"plain": (0o644, None), "private": (0o600, None), "wide": (0o666, None),
             "owned": (0o640, (1234, 5678)), "setuid": (0o4755, None),
             "setgid": (0o2750, (0, 99)), "xattr": (0o644, None), "empty": (0o644, None)}
    for name, (mode, owner) in files.items():
        (src / "d" / name).write_bytes(b"" if name == "empty" else name.encode() * 3)
        if owner:
            os.chown(src / "d" / name, *owner)
        os.chmod(src / "d" / name, mode)
    os.setxattr(src / "d" / "xattr", "user.k", b"v")
    with open(src / "d" / "sparse", "wb") as f:
        f.truncate(12288)
        f.seek(8192)
        f.write(b"tail")
    os.link(src / "d" / "plain", src / "d" / "plain2")
    os.link(src / "d" / "private", tmp_path / "outside")  # its other name is not copied
    for name in os.listdir(src / "d"):
        os.utime(src / "d" / name, ns=(7, 1_600_000_000_000_000_001 + len(name)))
    old = os.umask(umask)
    try:
        copy_tree(src, tmp_path / "dst", workers=workers)
    finally:
        os.umask(old)
    out = tmp_path / "dst" / "d"
    assert all(os.lstat(out / n).st_atime_ns == 7 for n in os.listdir(out))  # (read: later)
    assert _pic(tmp_path / "dst") == _pic(src)
    assert os.lstat(out / "plain").st_ino == os.lstat(out / "plain2").st_ino
    assert os.lstat(out / "plain").st_nlink == 2
    assert os.lstat(out / "private").st_nlink == 1
    assert os.lstat(out / "sparse").st_blocks * 512 < 12288  # its hole kept


@root_only
@pytest.mark.parametrize("workers", [1, 2])
def test_copy_tree_takes_a_files_metadata_from_the_file_it_opens(tmp_path, monkeypatch,
                                                                  workers):
    """A plain copy lists regular files without an lstat and takes each one's from the
    descriptor it reads through: every kind of entry next to them (directories, symlinks,
    fifos, devices, files big enough for their own threads, a hardlink across the parts
    of a split directory) ends as its source; a file whose only xattrs are overlayfs'
    private ones gets none, one with a user xattr next to it keeps its own."""
    import llb.fsutil.tree as tree

    monkeypatch.setattr(tree, "BIG_FILE", 64)  # files of 64 bytes and more: off the loop
    monkeypatch.setattr(tree, "SPLIT", 8)
    src = tmp_path / "src"
    (src / "d" / "sub").mkdir(parents=True)
    for i in range(30):
        f = src / "d" / f"f{i:02}"
        f.write_bytes(b"x" * (i * 5))  # 0..145 bytes: both sides of BIG_FILE
        os.chmod(f, (0o644, 0o600, 0o4711, 0o1777)[i % 4])
        if i % 3 == 0:
            os.chown(f, 1000 + i, 2000 + i)
    os.setxattr(src / "d" / "f01", "trusted.overlay.opaque", b"y")
    os.setxattr(src / "d" / "f02", "user.k", b"v")
    os.setxattr(src / "d" / "f03", "trusted.overlay.origin", b"o")
    os.setxattr(src / "d" / "f03", "user.k", b"w")
    os.link(src / "d" / "f04", src / "d" / "z-link")  # in another part than its first name
    os.link(src / "d" / "f29", src / "d" / "sub" / "big-link")
    os.symlink("f00", src / "d" / "l")
    os.mkfifo(src / "d" / "p", 0o640)
    os.mknod(src / "d" / "c", stat.S_IFCHR | 0o620, os.makedev(1, 3))
    for e in walk(src):
        os.utime(e.name, ns=(9, 1_650_000_000_000_000_007), dir_fd=e.dir_fd,
                 follow_symlinks=False)
    copy_tree(src, tmp_path / "dst", workers=workers)
    out = tmp_path / "dst" / "d"
    assert all(os.lstat(out / n).st_atime_ns == 9 for n in os.listdir(out)  # (read: later)
               if n != "sub")
    assert _pic(tmp_path / "dst") == _pic(src)
    assert os.listxattr(out / "f01") == []
    assert os.listxattr(out / "f03") == ["user.k"]
    assert os.lstat(out / "z-link").st_ino == os.lstat(out / "f04").st_ino
    assert os.lstat(out / "sub" / "big-link").st_ino == os.lstat(out / "f29").st_ino


@pytest.mark.parametrize("where", ["main", "worker"])
@pytest.mark.parametrize("exc", [OSError(errno.EIO, "injected"), KeyboardInterrupt()])
def test_copy_tree_stops_every_thread_on_a_failure_and_raises_it(tmp_path, monkeypatch,
                                                                 where, exc):
    """A directory that fails on any thread of a copy (an I/O error, or a signal's exception
    on the calling thread) stops the others at their next directory; copy_tree raises it
    once every thread has ended, and never copies the rest of the tree meanwhile."""
    import threading
    import time

    import llb.fsutil.tree as tree

    src = tmp_path / "src"
    for i in range(40):
        (src / f"d{i:02}" / "sub").mkdir(parents=True)
        (src / f"d{i:02}" / "sub" / "f").write_bytes(b"x")
    real = tree._CopyJob.copy_dir
    seen: list[str] = []
    failed = threading.Event()

    def copy_dir(self, s, *args, **kwargs):
        seen.append(s)
        main = threading.current_thread() is threading.main_thread()
        if s != str(src) and main == (where == "main") and not failed.is_set():
            failed.set()
            raise exc
        if main != (where == "main"):
            time.sleep(0.01)  # the other threads are slow: the failing one gets a task
        return real(self, s, *args, **kwargs)

    monkeypatch.setattr(tree._CopyJob, "copy_dir", copy_dir)
    with pytest.raises(type(exc)):
        tree.copy_tree(src, tmp_path / "dst", workers=3)
    assert failed.is_set()
    assert not [t for t in threading.enumerate() if t.name == "llb-copy"]
    assert len(seen) < 81  # the other directories were never started


def test_copy_tree_of_many_directories_starts_no_thread_pool(tmp_path):
    """The threads of a copy are plain threads: concurrent.futures (and logging with it)
    stays out of a process that exports a tree of many directories."""
    import subprocess
    import sys

    for i in range(20):
        (tmp_path / "src" / f"d{i}").mkdir(parents=True)
        (tmp_path / "src" / f"d{i}" / "f").write_bytes(b"%d" % i)
    code = ("import sys; from llb.fsutil import copy_tree; "
            f"copy_tree({str(tmp_path / 'src')!r}, {str(tmp_path / 'dst')!r}, workers=2); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('concurrent', 'logging')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
    assert sorted(os.listdir(tmp_path / "dst")) == sorted(f"d{i}" for i in range(20))


def test_a_signal_out_of_a_copy_threads_start_stops_the_copy_threads(tmp_path, monkeypatch):
    """The signal handler's KeyboardInterrupt can come out of Thread.start() once the thread
    runs: copy_tree must stop and join that thread before it raises, not leave it copying
    into a tree the caller's cleanup is about to remove."""
    import threading

    src = tmp_path / "src"
    for d in range(20):
        (src / f"d{d}").mkdir(parents=True)
        for f in range(100):
            (src / f"d{d}" / f"f{f}").write_bytes(b"x")
    interrupt_thread_starts(monkeypatch, "llb-copy")
    with pytest.raises(KeyboardInterrupt):
        copy_tree(src, tmp_path / "dst", workers=2)
    assert [t.name for t in threading.enumerate() if t.name == "llb-copy"] == []


def test_plain_files_keep_xattrs_and_times_where_listing_them_is_refused(tmp_path, monkeypatch):
    # the per-file path of a plain copy lists the open source's xattrs itself: a file of
    # our owner and plain mode with a carried xattr keeps it, one with only overlayfs'
    # private ones gets none; where the source refuses the listing, files are copied
    # without xattrs, their times kept
    import llb.fsutil.entry as entry

    src = tmp_path / "src"
    src.mkdir()
    for name in ("a", "b", "c"):
        (src / name).write_bytes(name.encode())
        os.chmod(src / name, 0o644)
    os.setxattr(src / "a", "user.k", b"v")
    os.setxattr(src / "b", "trusted.overlay.opaque", b"y")
    for name in ("a", "b", "c"):
        os.utime(src / name, ns=(5, 1_650_000_000_000_000_003))
    copy_tree(src, tmp_path / "one", workers=1)
    assert os.getxattr(tmp_path / "one" / "a", "user.k") == b"v"
    assert os.listxattr(tmp_path / "one" / "b") == []
    assert _pic(tmp_path / "one") == _pic(src)

    def refused(fd):
        raise OSError(errno.ENOTSUP, "not supported")

    monkeypatch.setattr(entry, "_listxattr", refused)
    monkeypatch.setattr(entry, "xattr_names", lambda fd: [])  # (the refusal, as it reports it)
    for name in ("a", "b", "c"):  # (the first copy's reads moved the atimes)
        os.utime(src / name, ns=(5, 1_650_000_000_000_000_003))
    copy_tree(src, tmp_path / "two", workers=1)
    for name in ("a", "b", "c"):
        st = os.lstat(tmp_path / "two" / name)
        assert (st.st_mtime_ns, st.st_atime_ns, stat.S_IMODE(st.st_mode)) == \
            (1_650_000_000_000_000_003, 5, 0o644)
    assert os.listxattr(tmp_path / "two" / "a") == []
