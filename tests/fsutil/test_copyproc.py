"""copy_tree's second process (llb.fsutil.copyproc): a big plain copy hands whole
directories to it; the result is the same tree as a copy on one process (hardlinks split
between the two included), its errors are the parent's own, a stopped copy leaves no process
behind nor anything writing, and a small copy never starts one."""

from __future__ import annotations

import errno
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

import llb.fsutil.copyproc as copyproc
import llb.fsutil.tree as tree
from llb.fsutil import copy_tree, read_xattrs, walk
from loopfs import LoopFS, loop_problem

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="chown and mknod need root")
T = 1_600_000_000_000_000_000


def describe(root: Path) -> dict[str, tuple]:
    """Every entry: type, mode, owner, rdev, mtime (directories' too), contents or target,
    xattrs, and the group of names sharing its inode."""
    out: dict[str, tuple] = {}
    inodes: dict[int, list[str]] = {}
    for e in walk(root):
        st = e.st
        assert st is not None
        body: bytes | str | None = None
        if stat.S_ISREG(st.st_mode):
            fd = os.open(e.name, os.O_RDONLY, dir_fd=e.dir_fd)
            body = os.read(fd, 1 << 20)
            os.close(fd)
            inodes.setdefault(st.st_ino, []).append(e.rel)
        elif stat.S_ISLNK(st.st_mode):
            body = os.readlink(e.name, dir_fd=e.dir_fd)
        out[e.rel] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                      st.st_rdev, st.st_mtime_ns, body, read_xattrs(e.name, dir_fd=e.dir_fd),
                      st.st_nlink)
    for names in inodes.values():
        for n in names:
            out[n] += (tuple(sorted(names)),)
    return out


@pytest.fixture
def watched(monkeypatch):
    """The processes copy_tree starts: {"pids": [...], "given": [batch, ...], "linked":
    [the multiply-linked files each batch reported, ...]}."""
    seen: dict[str, list] = {"pids": [], "given": [], "linked": []}
    init, send = copyproc.CopyProcess.__init__, copyproc.CopyProcess.send
    receive = copyproc.CopyProcess.receive

    def spy_receive(self):
        got = receive(self)
        if got is not None:
            seen["linked"].extend(got[1])
        return got

    def spy_init(self):
        init(self)
        seen["pids"].append(self.pid)

    def spy_send(self, batch):
        if batch:
            seen["given"].append(batch)
        send(self, batch)

    monkeypatch.setattr(copyproc.CopyProcess, "__init__", spy_init)
    monkeypatch.setattr(copyproc.CopyProcess, "send", spy_send)
    monkeypatch.setattr(copyproc.CopyProcess, "receive", spy_receive)
    return seen


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except FileNotFoundError:
        return True


def _rich_tree(src: Path, dirs: int, files: int) -> None:
    """dirs directories of `files` small files each, with every kind of entry and metadata,
    and hardlink pairs whose names lie in directories far apart (the first ones go to the
    second process, the last ones stay with the parent)."""
    for i in range(dirs):
        d = src / f"d{i:02}"
        (d / "sub").mkdir(parents=True)
        for j in range(files):
            (d / f"f{j}").write_bytes(b"file %d of %d\n" % (j, i))
        os.chmod(d / "f1", 0o600)
        os.chmod(d / "f2", 0o4755)
        os.chown(d / "f3", 1000 + i, 2000 + i)
        os.setxattr(d / "f4", "user.k", b"v%d" % i)
        (d / "sub" / "s").write_bytes(b"sub %d" % i)
        os.symlink(f"f{i}", d / "link")
        os.mkfifo(d / "fifo", 0o640)
        os.mknod(d / "null", stat.S_IFCHR | 0o620, os.makedev(1, 3))
        with open(d / "sparse", "wb") as f:
            f.truncate(1 << 16)
            f.write(b"head")
    for i in range(dirs // 2):  # pairs across the tree, and a triple in one directory
        os.link(src / f"d{i:02}" / "f5", src / f"d{dirs - 1 - i:02}" / f"hard{i}")
    os.link(src / "d00" / "f6", src / "d00" / "f6-again")
    os.link(src / "d00" / "f6", src / "d01" / "f6-too")
    for e in walk(src, leave=True):
        if e.is_dir and not e.leaving:
            continue
        os.utime(e.name, ns=(T, T + len(e.rel)), dir_fd=e.dir_fd, follow_symlinks=False)
        if e.is_dir:
            os.chmod(e.name, 0o555 if e.rel.endswith("sub") else 0o750, dir_fd=e.dir_fd)
    os.utime(src, ns=(T, T + 1))


@pytest.fixture
def idle(monkeypatch):
    """The machine counts as idle (the tests' machine is busy with other tests)."""
    monkeypatch.setattr(tree, "SPARE_CPU", 0.0)


@root_only
def test_a_big_tree_copied_by_two_processes_is_the_same_tree(tmp_path, watched, idle):
    """A tree above the threshold (60 directories of 100 files), a CPU to spare: the second
    process is started and given directories; every entry ends as its source (modes, owners, mtimes of
    files and read-only directories, xattrs, symlinks, fifos, devices, holes), and names of
    one inode split between the processes are still one inode, linked as often."""
    src = tmp_path / "src"
    _rich_tree(src, 60, 100)
    copy_tree(src, tmp_path / "dst")
    assert watched["pids"] and watched["given"], "no second process was given directories"
    given = {rel for batch in watched["given"] for _, _, rel in batch}
    assert "d00" in given and "d59" not in given  # (the pairs are split between the two)
    assert describe(tmp_path / "dst") == describe(src)
    assert os.lstat(tmp_path / "dst" / "d00" / "f6").st_nlink == 3
    assert os.lstat(tmp_path / "dst" / "d00" / "sparse").st_blocks * 512 < 1 << 16
    assert all(_gone(pid) for pid in watched["pids"])


def test_files_linked_outside_the_tree_are_copied_by_both_processes(tmp_path, watched, idle):
    """A merge's result in a store: every file has a link outside the exported tree. The
    second process copies its share of them (it does not leave them to the parent), each
    once: every copy is a file of its own, as its source's contents, mode and mtime."""
    src, store = tmp_path / "src", tmp_path / "store"
    store.mkdir()
    for i in range(50):
        (src / f"d{i:02}").mkdir(parents=True)
        for j in range(100):
            f = src / f"d{i:02}" / f"f{j}"
            f.write_bytes(b"%d %d" % (i, j))
            os.chmod(f, 0o640 + j % 2)
            os.utime(f, ns=(T, T + j))
            os.link(f, store / f"{i}-{j}")
    copy_tree(src, tmp_path / "dst")
    assert watched["given"]
    copied_there = [dst for _, _, dst, copied in watched["linked"] if copied]
    assert len(copied_there) >= 100 * sum(len(b) for b in watched["given"])
    want = {k: v[:-2] for k, v in describe(src).items()}  # (link counts differ: 2 and 1)
    assert {k: v[:-2] for k, v in describe(tmp_path / "dst").items()} == want
    assert all(e.st.st_nlink == 1 for e in walk(tmp_path / "dst") if not e.is_dir)


@pytest.mark.parametrize("kind", ["few", "busy", "link", "only"])
def test_a_small_or_special_copy_starts_no_process(tmp_path, monkeypatch, watched, kind):
    """Below the threshold (10 directories of 100 files), or on a machine without a CPU to
    spare, or a copy that links, or one of a selection, is copied by this process alone."""
    monkeypatch.setattr(tree, "SPARE_CPU", 1000.0 if kind == "busy" else 0.0)
    src = tmp_path / "src"
    for i in range(10 if kind == "few" else 60):
        (src / f"d{i}").mkdir(parents=True)
        for j in range(100):
            (src / f"d{i}" / f"f{j}").write_bytes(b"%d" % j)
    if kind in ("few", "busy"):
        copy_tree(src, tmp_path / "dst")
    elif kind == "link":
        copy_tree(src, tmp_path / "dst", link=True)
    else:
        copy_tree(src, tmp_path / "dst", only={f"d{i}" for i in range(60)} |
                  {f"d{i}/f{j}" for i in range(60) for j in range(100)})
    assert watched["pids"] == []
    assert len(list(walk(tmp_path / "dst"))) == len(list(walk(src)))


@pytest.fixture
def always(monkeypatch):
    """Every plain copy of two directories or more starts the second process at once."""
    monkeypatch.setattr(tree, "SPARE_CPU", 0.0)
    monkeypatch.setattr(tree, "SECOND_PROCESS", 1)
    monkeypatch.setattr(tree, "SECOND_PROCESS_LEFT", 1)


def test_a_full_disk_in_the_second_process_is_the_copys_error(tmp_path, monkeypatch, watched,
                                                               always):
    """The second process meets ENOSPC: copy_tree raises it as its own (the OSError with the
    errno and the path, which the exporters turn into their one-line errors), the process is
    reaped, and every file written is whole (no part of a file stays)."""
    if loop_problem():
        pytest.skip(loop_problem())
    src = tmp_path / "src"
    for i in range(40):
        (src / f"d{i:02}").mkdir(parents=True)
        big = i < 8  # the bottom of the stack: the process's first batch
        for j in range(4 if big else 20):  # (the parent's: empty files, which need no block)
            (src / f"d{i:02}" / f"f{j}").write_bytes(os.urandom(600 << 10) if big else b"")
    _slow_parent(monkeypatch, 0.02)
    fs = LoopFS(tmp_path / "loop", size_mib=8)
    try:
        with pytest.raises(OSError) as got:
            copy_tree(src, fs.mnt / "dst")
        assert got.value.errno == errno.ENOSPC
        given = {rel for batch in watched["given"] for _, _, rel in batch}
        where = os.path.relpath(got.value.filename, fs.mnt / "dst")
        assert where.split("/")[0] in given, (where, given)
        assert all(_gone(pid) for pid in watched["pids"])
        for e in walk(fs.mnt / "dst"):
            if not e.is_dir:
                assert (fs.mnt / "dst" / e.rel).read_bytes() == (src / e.rel).read_bytes()
    finally:
        fs.close()


def test_an_entry_the_second_process_cannot_open_is_the_copys_error(tmp_path, monkeypatch,
                                                                      watched, always):
    """A directory the second process cannot open (a symlink put in its place once the
    parent chose it: never followed) fails the copy with its path, as in the parent; the
    process is reaped."""
    src = tmp_path / "src"
    for i in range(60):
        (src / f"d{i:02}").mkdir(parents=True)
        for j in range(100):
            (src / f"d{i:02}" / f"f{j}").write_bytes(b"x")
    _slow_parent(monkeypatch)
    send = copyproc.CopyProcess.send

    def swap_then_send(self, batch):
        for s, _, rel in batch:
            if rel == "d01":
                os.rename(s, s + ".moved")
                os.symlink(s + ".moved", s)
        send(self, batch)

    monkeypatch.setattr(copyproc.CopyProcess, "send", swap_then_send)
    with pytest.raises(OSError) as got:
        copy_tree(src, tmp_path / "dst")
    assert got.value.errno in (errno.ELOOP, errno.ENOTDIR)
    assert got.value.filename == str(src / "d01")
    assert "d01" in {rel for batch in watched["given"] for _, _, rel in batch}
    assert all(_gone(pid) for pid in watched["pids"])


def _slow_parent(monkeypatch, pause: float = 0.01) -> None:
    """The parent's directories take `pause` longer: the second process, fast beside it,
    gets the first directories of the stack (the first names) for sure."""
    real = tree._CopyJob.copy_dir

    def slow(self, *args, **kwargs):
        time.sleep(pause)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(tree._CopyJob, "copy_dir", slow)


@pytest.mark.parametrize("exc", [KeyboardInterrupt("SIGTERM"), OSError(errno.EIO, "injected")])
def test_a_copy_stopped_in_the_parent_stops_and_reaps_the_process(tmp_path, monkeypatch,
                                                                   watched, always, exc):
    """The parent fails or is interrupted while the second process copies: copy_tree raises
    once that process has stopped (at a directory's end) and is reaped; nothing writes into
    the destination after it returns."""
    src = tmp_path / "src"
    for i in range(60):
        (src / f"d{i:02}").mkdir(parents=True)
        for j in range(100):
            (src / f"d{i:02}" / f"f{j}").write_bytes(b"x")
    real = tree._CopyJob.copy_dir

    def copy_dir(self, s, *args, **kwargs):
        if watched["given"]:
            time.sleep(0.05)  # the process is copying
            raise exc
        return real(self, s, *args, **kwargs)

    monkeypatch.setattr(tree._CopyJob, "copy_dir", copy_dir)
    with pytest.raises(type(exc)):
        copy_tree(src, tmp_path / "dst")
    assert watched["given"]
    assert all(_gone(pid) for pid in watched["pids"])
    before = sorted(str(e.rel) for e in walk(tmp_path / "dst"))
    time.sleep(0.2)
    assert sorted(str(e.rel) for e in walk(tmp_path / "dst")) == before
    assert len(before) < 60 * 101  # (it did stop)


def test_a_check_that_cancels_stops_the_process(tmp_path, watched, always):
    """The caller's check (a cancelled solve) raising while the process copies: raised by
    copy_tree once the process is reaped."""
    src = tmp_path / "src"
    for i in range(60):
        (src / f"d{i:02}").mkdir(parents=True)
        for j in range(100):
            (src / f"d{i:02}" / f"f{j}").write_bytes(b"x")

    class Cancelled(Exception):
        pass

    def check():
        if watched["given"]:
            raise Cancelled

    with pytest.raises(Cancelled):
        copy_tree(src, tmp_path / "dst", check=check)
    assert watched["pids"] and all(_gone(pid) for pid in watched["pids"])


def _children(pid: int) -> list[int]:
    kids = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat", "rb") as f:
                    if int(f.read().rsplit(b")", 1)[1].split()[1]) == pid:
                        kids.append(int(p))
            except (OSError, ValueError):
                pass
    return kids


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_a_signal_to_a_copying_process_leaves_no_copy_process(tmp_path, sig):
    """A process copying a big tree (the CLI's handlers: SIGINT and SIGTERM raise
    KeyboardInterrupt) gets a signal while its second process copies: the second process
    stops and is gone (reaped by the parent; after a SIGKILL of the parent, it sees its pipe
    close and ends on its own), and the destination stops changing."""
    src = tmp_path / "src"
    for i in range(100):
        (src / f"d{i:02}").mkdir(parents=True)
        for j in range(100):
            (src / f"d{i:02}" / f"f{j}").write_bytes(b"x")
    code = ("import signal, sys\n"
            "def stop(n, f): raise KeyboardInterrupt(signal.Signals(n).name)\n"
            "signal.signal(signal.SIGTERM, stop)\n"
            "import llb.fsutil.tree as t\n"
            "t.SECOND_PROCESS = t.SECOND_PROCESS_LEFT = 1; t.SPARE_CPU = 0.0\n"
            "real = t._CopyJob.copy_dir\n"
            "def slow(self, *a):\n"
            "    import time; time.sleep(0.01); return real(self, *a)\n"
            "t._CopyJob.copy_dir = slow\n"  # (the parent's share only: the process is fast)
            "print('go', flush=True)\n"
            f"t.copy_tree({str(src)!r}, {str(tmp_path / 'dst')!r})\n")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        assert p.stdout is not None and p.stdout.readline() == b"go\n"
        deadline = time.monotonic() + 20
        while not (kids := _children(p.pid)) and time.monotonic() < deadline:
            time.sleep(0.005)
        assert kids, "no second process started"
        time.sleep(0.1)  # copying
        p.send_signal(sig)
        _, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode != 0
    if sig != signal.SIGKILL:
        assert b"KeyboardInterrupt" in err
    deadline = time.monotonic() + 10
    while not all(_gone(k) for k in kids) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert all(_gone(k) for k in kids)
    before = sorted(e.rel for e in walk(tmp_path / "dst"))
    time.sleep(0.2)
    assert sorted(e.rel for e in walk(tmp_path / "dst")) == before
    assert len(before) < 100 * 101
