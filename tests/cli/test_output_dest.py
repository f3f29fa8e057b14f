"""File and directory destinations of `llb solve --output` and `llb marshal -o` (issue 10,
items 5 and 10): anything that is not a regular file is written through, never replaced
(a FIFO's reader gets the stream, a device node stays a device node, a symlink stays a
symlink); a regular file is replaced atomically and keeps its mode; a new file gets 0666
less the umask; a symlink to a directory is written into.

Device nodes are made with mknod in the test's directory: no real /dev node is touched."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import tarfile
import threading
from pathlib import Path

import llb
from solvehelp import LLB, LLB_PATH, llb_root, write  # noqa: F401 (fixture)

BUILD = '''
import llb

def build():
    return llb.scratch().file(llb.mkdir("/d").mkfile("/d/a", b"hello"))
'''


def _members(data: bytes) -> dict[str, bytes | None]:
    out: dict[str, bytes | None] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
        for m in tf:
            f = tf.extractfile(m) if m.isfile() else None
            out[m.name] = f.read() if f is not None else None
    return out


def _tar_ok(data: bytes) -> None:
    assert _members(data) == {"d": None, "d/a": b"hello"}


class _Reader(threading.Thread):
    """Reads a FIFO to its end (opening it blocks until a writer comes)."""

    def __init__(self, path: Path):
        super().__init__(daemon=True)
        self.path = path
        self.data = b""

    def run(self) -> None:
        with open(self.path, "rb") as f:
            self.data = f.read()


def _chardev(path: Path, major: int, minor: int) -> Path:
    os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(major, minor))
    return path


def _is_chardev(path: Path, major: int, minor: int) -> bool:
    st = os.lstat(path)
    return stat.S_ISCHR(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) == (major, minor)


def test_tar_into_a_fifo_reaches_its_reader(llb_root: LLB, tmp_path: Path):
    build = write(tmp_path / "build.py", BUILD)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = _Reader(fifo)
    reader.start()
    r = llb_root.solve(build, "--output", f"type=tar,dest={fifo}")
    reader.join(30)
    assert r.code == 0, r.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    _tar_ok(reader.data)


def test_tar_through_a_symlink_to_a_fifo(llb_root: LLB, tmp_path: Path):
    build = write(tmp_path / "build.py", BUILD)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    link = tmp_path / "link"
    link.symlink_to(fifo)
    reader = _Reader(fifo)
    reader.start()
    r = llb_root.solve(build, "--output", f"type=tar,dest={link}")
    reader.join(30)
    assert r.code == 0, r.stderr
    assert os.readlink(link) == str(fifo) and stat.S_ISFIFO(os.lstat(fifo).st_mode)
    _tar_ok(reader.data)


def test_tar_into_device_nodes_keeps_them(llb_root: LLB, tmp_path: Path):
    build = write(tmp_path / "build.py", BUILD)
    null = _chardev(tmp_path / "null", 1, 3)
    r = llb_root.solve(build, "--output", f"type=tar,dest={null}")
    assert r.code == 0, r.stderr
    assert _is_chardev(null, 1, 3)
    # through a symlink, as dest=/dev/stdout -> /proc/self/fd/1 would be
    link = tmp_path / "to-null"
    link.symlink_to(null)
    r = llb_root.solve(build, "--output", f"type=tar,dest={link}")
    assert r.code == 0, r.stderr
    assert os.readlink(link) == str(null) and _is_chardev(null, 1, 3)
    # a device that refuses the write (like /dev/full): one error line (a full disk: exit
    # 1, as a failed build), the node stays
    full = _chardev(tmp_path / "full", 1, 7)
    r = llb_root.solve(build, "--output", f"type=tar,dest={full}")
    assert r.code == 1
    assert r.stderr.splitlines()[-1] == f"error: no space left on device (destination {full})"
    assert "Traceback" not in r.stderr
    assert _is_chardev(full, 1, 7)


def test_tar_to_a_stdout_symlink_writes_stdout(llb_root: LLB, tmp_path: Path):
    build = write(tmp_path / "build.py", BUILD)
    link = tmp_path / "stdout"
    link.symlink_to("/proc/self/fd/1")
    r = llb_root.solve(build, "--output", f"type=tar,dest={link}")
    assert r.code == 0, r.stderr
    assert os.readlink(link) == "/proc/self/fd/1"
    _tar_ok(r.stdout)


def test_tar_through_a_symlink_to_a_regular_file(llb_root: LLB, tmp_path: Path):
    """As buildctl (os.Create follows it): the link stays, the file it names gets the tar,
    keeping its mode."""
    build = write(tmp_path / "build.py", BUILD)
    target = tmp_path / "real.tar"
    target.write_bytes(b"old")
    target.chmod(0o640)
    link = tmp_path / "out.tar"
    link.symlink_to("real.tar")
    r = llb_root.solve(build, "--output", f"type=tar,dest={link}")
    assert r.code == 0, r.stderr
    assert os.readlink(link) == "real.tar"
    assert stat.S_IMODE(os.lstat(target).st_mode) == 0o640
    _tar_ok(target.read_bytes())
    # a dangling symlink: the file it names is created
    (tmp_path / "dangling").symlink_to("new.tar")
    r = llb_root.solve(build, "--output", f"type=tar,dest={tmp_path / 'dangling'}")
    assert r.code == 0, r.stderr
    assert os.path.islink(tmp_path / "dangling")
    _tar_ok((tmp_path / "new.tar").read_bytes())
    assert sorted(p.name for p in tmp_path.iterdir() if ".llb-tmp" in p.name) == []


def test_tar_replaces_a_regular_file_keeping_its_mode(llb_root: LLB, tmp_path: Path):
    build = write(tmp_path / "build.py", BUILD)
    out = tmp_path / "out.tar"
    out.write_bytes(b"old")
    out.chmod(0o600)
    r = llb_root.solve(build, "--output", f"type=tar,dest={out}")
    assert r.code == 0, r.stderr
    assert stat.S_IMODE(os.lstat(out).st_mode) == 0o600
    _tar_ok(out.read_bytes())


def _umask_run(argv: list[str], mask: int) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(argv, capture_output=True, timeout=120,
                          preexec_fn=lambda: os.umask(mask))


def test_new_tar_file_honours_the_umask(llb_root: LLB, tmp_path: Path):
    build = write(tmp_path / "build.py", BUILD)
    for mask, mode in ((0o022, 0o644), (0o027, 0o640)):
        out = tmp_path / f"out-{mask:o}.tar"
        p = _umask_run(llb_root.solve_args(build, "--output", f"type=tar,dest={out}"), mask)
        assert p.returncode == 0, p.stderr
        assert stat.S_IMODE(os.lstat(out).st_mode) == mode
        _tar_ok(out.read_bytes())


def test_local_output_into_a_symlink_to_a_directory(llb_root: LLB, tmp_path: Path):
    build = write(tmp_path / "build.py", BUILD)
    real = tmp_path / "real"
    real.mkdir()
    (real / "keep").write_text("k")
    link = tmp_path / "link"
    link.symlink_to("real")
    r = llb_root.solve(build, "--output", f"type=local,dest={link}")
    assert r.code == 0, r.stderr
    assert os.readlink(link) == "real"
    assert (real / "d" / "a").read_bytes() == b"hello" and (real / "keep").read_text() == "k"


# ----------------------------------------------------------------------------- marshal


def _marshal(build: Path, out: Path, mask: int = 0o022) -> subprocess.CompletedProcess[bytes]:
    return _umask_run([LLB_PATH, "marshal", str(build), "-o", str(out)], mask)


def _definition_ok(data: bytes, build: Path) -> None:
    d = llb.Definition.from_bytes(data)
    assert d.output is not None and len(d.ops) == 2


def test_marshal_honours_the_umask_and_keeps_a_files_mode(tmp_path: Path):
    build = write(tmp_path / "build.py", BUILD)
    for mask, mode in ((0o022, 0o644), (0o027, 0o640), (0o077, 0o600)):
        out = tmp_path / f"g-{mask:o}.llb"
        p = _marshal(build, out, mask)
        assert p.returncode == 0, p.stderr
        assert stat.S_IMODE(os.lstat(out).st_mode) == mode
        _definition_ok(out.read_bytes(), build)
    existing = tmp_path / "existing.llb"
    existing.write_bytes(b"old")
    existing.chmod(0o604)
    assert _marshal(build, existing).returncode == 0
    assert stat.S_IMODE(os.lstat(existing).st_mode) == 0o604
    _definition_ok(existing.read_bytes(), build)


def test_marshal_writes_through_fifos_symlinks_and_devices(tmp_path: Path):
    build = write(tmp_path / "build.py", BUILD)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = _Reader(fifo)
    reader.start()
    p = _marshal(build, fifo)
    reader.join(30)
    assert p.returncode == 0, p.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    _definition_ok(reader.data, build)

    target = tmp_path / "real.llb"
    target.write_bytes(b"old")
    link = tmp_path / "link.llb"
    link.symlink_to(target)
    assert _marshal(build, link).returncode == 0
    assert os.readlink(link) == str(target)
    _definition_ok(target.read_bytes(), build)

    null = _chardev(tmp_path / "null", 1, 3)
    assert _marshal(build, null).returncode == 0
    assert _is_chardev(null, 1, 3)
    full = _chardev(tmp_path / "full", 1, 7)
    p = _marshal(build, full)
    assert p.returncode == 1
    assert p.stderr.decode() == f"error: no space left on device (destination {full})\n"
    assert b"Traceback" not in p.stderr and _is_chardev(full, 1, 7)
