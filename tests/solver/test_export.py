"""Exporters: `type=local` and `type=tar` round-trip every kind of metadata, on both
snapshotters; tars are checked with Python's tarfile and with GNU tar."""

from __future__ import annotations

import io
import os
import shutil
import stat
import struct
import subprocess
import tarfile
from pathlib import Path

import pytest

from llb.solver.errors import ExportError
from llb.solver.exporters.local import export_local
from llb.solver.exporters.tar import export_tar

from filehelp import seed  # noqa: F401

T = 1_600_000_000_123_456_789
BIN = b"\xff\x00\x01binary"
# vfs_cap_data v2, effective, permitted = CAP_NET_BIND_SERVICE: must survive the chown
CAP = struct.pack("<IIIII", 0x02000001, 1 << 10, 0, 0, 0)


def _rich_tree(p: Path):
    (p / "d/empty").mkdir(parents=True)
    (p / "d/e f ü.txt").write_bytes(b"unicode name")
    (p / "secret").mkdir()
    (p / "secret/k").write_bytes(b"key")
    (p / "suid").write_bytes(b"#!/bin/sh\n")
    os.chown(p / "suid", 1001, 1002)
    os.chmod(p / "suid", 0o4755)
    (p / "a").write_bytes(b"linked data")
    os.link(p / "a", p / "d/a-hard")
    os.link(p / "a", p / "secret/a-hard2")
    os.symlink("d/e f ü.txt", p / "rel-link")
    os.symlink("/no/such/target", p / "dangling")
    os.mkfifo(p / "fifo")
    os.chmod(p / "fifo", 0o640)
    os.mknod(p / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.chmod(p / "null", 0o666)
    os.mknod(p / "blk", stat.S_IFBLK | 0o600, os.makedev(7, 9))
    os.mknod(p / "sock", stat.S_IFSOCK | 0o755)
    (p / "cap").write_bytes(b"binary with a file capability")
    os.chown(p / "cap", 1001, 1001)
    os.chmod(p / "cap", 0o750)
    os.setxattr(p / "cap", "security.capability", CAP)
    os.setxattr(p / "a", "user.text", b"value")
    os.setxattr(p / "d", "user.bin", BIN)
    os.chmod(p / "secret", 0o700)
    os.chown(p / "secret", 7, 8)
    for i, rel in enumerate(["a", "suid", "fifo", "null", "blk", "sock", "d/e f ü.txt",
                             "secret/k", "d/empty", "secret", "d"]):
        os.utime(p / rel, ns=(T + i, T + i * 1000))
    for i, rel in enumerate(["rel-link", "dangling"]):
        os.utime(p / rel, ns=(T, T + 7 + i), follow_symlinks=False)


@pytest.fixture
def rich(store):
    return seed(store, None, _rich_tree)


def describe(root: Path) -> dict:
    """Everything the exporters must keep, per path (inode numbers as link groups)."""
    out, groups = {}, {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in sorted(dirnames + filenames):
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, root)
            s = os.lstat(p)
            xa = {} if stat.S_ISLNK(s.st_mode) else {
                k: os.getxattr(p, k, follow_symlinks=False)
                for k in os.listxattr(p, follow_symlinks=False)}
            extra = None
            if stat.S_ISREG(s.st_mode):
                extra = Path(p).read_bytes()
                group = groups.setdefault(s.st_ino, rel)
            else:
                group = None
            if stat.S_ISLNK(s.st_mode):
                extra = os.readlink(p)
            if stat.S_ISCHR(s.st_mode) or stat.S_ISBLK(s.st_mode):
                extra = (os.major(s.st_rdev), os.minor(s.st_rdev))
            out[rel] = (stat.S_IFMT(s.st_mode), stat.S_IMODE(s.st_mode), s.st_uid, s.st_gid,
                        s.st_mtime_ns, extra, xa, group)
    return out


# ------------------------------------------------------------------------------ local


def test_local_round_trip_every_metadata_kind(store, rich, tmp_path):
    dest = tmp_path / "out" / "deeper"
    export_local(store, rich, dest)
    with store.view(rich) as v:
        want = describe(Path(v))
    got = describe(dest)
    assert got == want
    assert stat.S_ISSOCK(os.lstat(dest / "sock").st_mode)
    # hardlinks kept within the result, and real copies: nothing shared with the store
    a = os.lstat(dest / "a")
    assert a.st_nlink == 3
    assert os.lstat(dest / "d/a-hard").st_ino == a.st_ino
    with store.view(rich) as v:
        assert (os.lstat(Path(v, "a")).st_dev, os.lstat(Path(v, "a")).st_ino) != (
            a.st_dev, a.st_ino)
        assert os.lstat(dest / "suid").st_nlink == 1
        (dest / "suid").write_bytes(b"edited")
        assert Path(v, "suid").read_bytes() == b"#!/bin/sh\n"


def test_local_fills_existing_dest(store, rich, tmp_path):
    dest = tmp_path / "out"
    (dest / "a").mkdir(parents=True)  # a directory where the result has a file
    (dest / "a/x").write_bytes(b"x")
    (dest / "d").write_bytes(b"a file where the result has a directory")
    (dest / "user-file").write_bytes(b"mine")
    export_local(store, rich, dest)
    assert (dest / "user-file").read_bytes() == b"mine"
    assert (dest / "a").read_bytes() == b"linked data"
    assert (dest / "d/e f ü.txt").read_bytes() == b"unicode name"
    export_local(store, rich, dest)  # again onto its own output
    assert (dest / "a").read_bytes() == b"linked data" and os.lstat(dest / "a").st_nlink == 3


def _modes_tree(p: Path):
    for i in range(30):  # enough directories for the export's threads to share them
        d = p / f"t{i}"
        d.mkdir()
        for name, mode in [("rw", 0o666), ("x", 0o777), ("ro", 0o400), ("sg", 0o2755)]:
            (d / name).write_bytes(name.encode() * i)
            os.chmod(d / name, mode)
        os.link(d / "rw", p / f"rw-hard{i}")
        os.chmod(d, 0o555)
        os.utime(d, ns=(T, T + i))


@pytest.mark.parametrize("workers", [1, 4])
def test_local_modes_the_umask_would_change_and_read_only_dirs(store, tmp_path, workers):
    ref = seed(store, None, _modes_tree)
    dest = tmp_path / "out"
    dest.mkdir()
    os.chown(dest, 0, 4242)
    os.chmod(dest, 0o2775)  # a set-group-ID destination must not lend its group
    old = os.umask(0o077)
    try:
        export_local(store, ref, dest, workers=workers)
    finally:
        os.umask(old)
    with store.view(ref) as src:
        assert describe(dest) == describe(Path(src))
    assert os.lstat(dest / "t3/rw").st_nlink == 2 and os.lstat(dest / "t3").st_mode & 0o777 == 0o555


def _big_files_tree(p: Path):
    """Files past the export's big-file size (copied on their own threads) beside small
    ones, with modes, owners, xattrs, times, a hardlink and a read-only directory."""
    (p / "ro").mkdir()
    for i, rel in enumerate(["big0", "big1", "ro/big2"]):
        (p / rel).write_bytes(bytes([i]) * (3 << 20) + rel.encode())
        os.chown(p / rel, 1000 + i, 2000 + i)
        os.chmod(p / rel, [0o600, 0o4755, 0o444][i])
        os.setxattr(p / rel, "user.n", rel.encode())
        os.utime(p / rel, ns=(T, T + i))
    os.link(p / "big0", p / "ro/big0-hard")
    (p / "small").write_bytes(b"small")
    os.chmod(p / "ro", 0o555)
    os.utime(p / "ro", ns=(T, T + 99))


def test_local_big_files_keep_content_metadata_and_links(store, tmp_path):
    ref = seed(store, None, _big_files_tree)
    dest = tmp_path / "out"
    export_local(store, ref, dest, workers=4)
    with store.view(ref) as src:
        assert describe(dest) == describe(Path(src))
    assert os.lstat(dest / "big0").st_nlink == 2
    assert (dest / "ro/big2").read_bytes()[-7:] == b"ro/big2"


def test_local_dest_that_cannot_be_written(store, rich, tmp_path):
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(ExportError) as ei:
        export_local(store, rich, tmp_path / "file")
    assert ei.value.exit_code == 2 and "not a directory" in str(ei.value)
    with pytest.raises(ExportError):
        export_local(store, rich, tmp_path / "file" / "below")


def test_local_empty_result(store, tmp_path):
    export_local(store, None, tmp_path / "e")
    assert list((tmp_path / "e").iterdir()) == []


# ------------------------------------------------------------------------------ tar


def _tar_bytes(store, ref) -> bytes:
    buf = io.BytesIO()
    export_tar(store, ref, buf)
    return buf.getvalue()


def test_tar_entries_with_tarfile(store, rich):
    data = _tar_bytes(store, rich)
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        members = tf.getmembers()
        by = {m.name: m for m in members}
        names = [m.name for m in members]
        assert names == ["a", "blk", "cap", "d", "d/a-hard", "d/e f ü.txt", "d/empty", "dangling",
                         "fifo", "null", "rel-link", "secret", "secret/a-hard2", "secret/k",
                         "suid"]  # sorted, depth first, no socket, no root entry
        assert by["a"].isreg() and tf.extractfile("a").read() == b"linked data"
        assert by["d/a-hard"].islnk() and by["d/a-hard"].linkname == "a"
        assert by["secret/a-hard2"].islnk() and by["secret/a-hard2"].linkname == "a"
        assert by["suid"].mode == 0o4755 and (by["suid"].uid, by["suid"].gid) == (1001, 1002)
        assert by["secret"].isdir() and by["secret"].mode == 0o700 and by["secret"].uid == 7
        assert by["rel-link"].issym() and by["rel-link"].linkname == "d/e f ü.txt"
        assert by["dangling"].linkname == "/no/such/target"
        assert by["fifo"].isfifo() and by["fifo"].mode == 0o640
        assert by["null"].ischr() and (by["null"].devmajor, by["null"].devminor) == (1, 3)
        assert by["blk"].isblk() and (by["blk"].devmajor, by["blk"].devminor) == (7, 9)
        # exact ns mtimes in pax records, whole seconds in the ustar header
        assert by["a"].pax_headers["mtime"] == "1600000000.123456789"
        assert by["d"].pax_headers["mtime"] == f"1600000000.{123456789 + 10 * 1000:09d}"
        assert int(by["a"].mtime) == 1_600_000_000
        assert by["a"].pax_headers["SCHILY.xattr.user.text"] == "value"
        raw = by["d"].pax_headers["SCHILY.xattr.user.bin"]
        assert raw.encode("utf-8", "surrogateescape") == BIN
        assert by["a"].uname == "" and by["a"].gname == ""
        cap = by["cap"].pax_headers["SCHILY.xattr.security.capability"]
        assert cap.encode("utf-8", "surrogateescape") == CAP


def test_tar_is_deterministic_and_streams(store, rich, tmp_path):
    a = _tar_bytes(store, rich)
    assert a == _tar_bytes(store, rich)
    r, w = os.pipe()  # a pipe cannot seek: the stdout case
    proc = subprocess.Popen(["cat"], stdin=r, stdout=subprocess.PIPE)
    os.close(r)
    with os.fdopen(w, "wb") as f:
        export_tar(store, rich, f)
    out, _ = proc.communicate()
    assert out == a


@pytest.mark.skipif(shutil.which("tar") is None, reason="GNU tar not installed")
def test_tar_with_gnu_tar(store, rich, tmp_path):
    path = tmp_path / "out.tar"
    with open(path, "wb") as f:
        export_tar(store, rich, f)
    listing = subprocess.run(["tar", "-tvf", str(path), "--numeric-owner", "--full-time"],
                             capture_output=True, text=True, check=True)
    assert listing.stderr == ""
    lines = listing.stdout.splitlines()
    assert len(lines) == 15
    assert any(line.startswith("-rwsr-xr-x 1001/1002") and line.endswith(" suid")
               for line in lines)
    assert any(line.startswith("hrw-r--r--") and "d/a-hard link to a" in line
               for line in lines)
    assert any(line.startswith("crw-rw-rw-") and " 1,3 " in line for line in lines)
    assert any("2020-09-13 12:26:40.123456789" in line and line.endswith(" a")
               for line in lines)
    # extraction by GNU tar restores what the store holds (xattrs, ns mtimes, links)
    out = tmp_path / "x"
    out.mkdir()
    subprocess.run(["tar", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf",
                    str(path), "-C", str(out)], check=True, capture_output=True)
    with store.view(rich) as v:
        want = describe(Path(v))
    want.pop("sock")
    assert describe(out) == want


def test_tar_empty_result(store):
    data = _tar_bytes(store, None)
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        assert tf.getmembers() == []
    assert len(data) % 512 == 0 and len(data) >= 1024


def test_tar_unwritable_output(store, rich):
    class Broken(io.RawIOBase):
        def writable(self):
            return True

        def write(self, b):
            raise OSError(28, "No space left on device")

    # a full disk passes through export_tar (write_file_dest names the destination)
    with pytest.raises(OSError, match="No space left"):
        export_tar(store, rich, Broken())

    class Failing(Broken):
        def write(self, b):
            raise OSError(5, "Input/output error")

    with pytest.raises(ExportError, match="Input/output error"):
        export_tar(store, rich, Failing())
