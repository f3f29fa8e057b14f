"""The runc executor on plain directories: process, isolation, mounts, stubs, cancellation."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from exechelp import needs_runc

from llb.executor import runc as executor_mod
from llb.executor.runc import (
    BindMount, Executor, ProcessSpec, RuncNotFoundError, TmpfsMount,
)

pytestmark = needs_runc


@pytest.fixture
def ex(tmp_path: Path) -> Executor:
    return Executor(tmp_path / "state")


def _run(ex: Executor, rootfs: Path, script: str, **kw):
    """Run script; what it logged as (stream, line) pairs (one log call carries the whole
    lines of one read)."""
    lines: list[tuple[str, bytes]] = []

    def log(s: str, d: bytes) -> None:
        lines.extend((s, ln) for ln in d.splitlines(True))

    result = ex.run(rootfs, ProcessSpec(args=["sh", "-c", script], **kw), log=log)
    return result, lines


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            out[os.path.relpath(p, root)] = (st.st_mode, st.st_mtime_ns)
    st = os.lstat(root)
    out["."] = (st.st_mode, st.st_mtime_ns)
    return out


def test_streams_lines_per_stream_and_exit_code(ex, busybox_rootfs):
    result, lines = _run(ex, busybox_rootfs, "echo one; echo two >&2; echo three; exit 3")
    assert result.exit_code == 3
    assert [d for s, d in lines if s == "stdout"] == [b"one\n", b"three\n"]
    assert [d for s, d in lines if s == "stderr"] == [b"two\n"]
    assert set(result.tail) == {"one", "two", "three"}
    assert result.runc_error == ""


def test_tail_keeps_last_20_lines(ex, busybox_rootfs):
    result, _ = _run(ex, busybox_rootfs, "i=0; while [ $i -lt 50 ]; do echo line$i; "
                     "i=$((i+1)); done; exit 1")
    assert result.tail == [f"line{i}" for i in range(30, 50)]


def test_missing_command_is_a_runc_error(ex, busybox_rootfs):
    result = ex.run(busybox_rootfs, ProcessSpec(args=["no-such-command"]))
    assert result.exit_code != 0
    assert "no-such-command" in result.runc_error
    assert "executable file not found" in result.runc_error


def test_stubs_are_removed_and_times_restored(ex, busybox_rootfs, tmp_path):
    before = _snapshot(busybox_rootfs)
    src = tmp_path / "src"
    src.mkdir()
    result, _ = _run(ex, busybox_rootfs, "test -d /proc/self && test -c /dev/null && "
                     "test -f /etc/hosts && test -d /mnt/a/b && test -d /tmp",
                     mounts=[BindMount("/mnt/a/b", src, readonly=True), TmpfsMount("/tmp")])
    assert result.exit_code == 0, result.tail
    assert _snapshot(busybox_rootfs) == before


def test_stubs_are_removed_every_time(ex, busybox_rootfs):
    """Right after runc exits the container's mounts may still pin the stubs (EBUSY)."""
    before = sorted(os.listdir(busybox_rootfs))
    for _ in range(8):
        result, _ = _run(ex, busybox_rootfs, "true")
        assert result.exit_code == 0
        assert sorted(os.listdir(busybox_rootfs)) == before
        assert sorted(os.listdir(busybox_rootfs / "etc")) == ["group", "passwd"]


def _pool(ex: Executor) -> dict[str, int]:
    """The stub pool: entry kind ("d" or "f") and inode, per entry name."""
    pool = ex.state_dir / "stubs"
    return {n: os.lstat(pool / n).st_ino for n in os.listdir(pool)}


def test_stubs_come_from_the_pool_and_go_back(ex, busybox_rootfs):
    """The system stubs are renamed in from the executor's pool and back: after the first
    run, runs create and delete nothing (the same inodes serve every run)."""
    before = _snapshot(busybox_rootfs)
    assert _pool(ex) == {}
    result, _ = _run(ex, busybox_rootfs, "test -f /etc/hosts && test -d /proc/self")
    assert result.exit_code == 0, result.tail
    first = _pool(ex)
    assert sorted(n[0] for n in first) == ["d", "d", "d", "f", "f"]
    for _ in range(3):
        result, _ = _run(ex, busybox_rootfs, "true")
        assert result.exit_code == 0, result.tail
        assert _snapshot(busybox_rootfs) == before
        assert sorted(_pool(ex).values()) == sorted(first.values())


def test_stubs_on_another_filesystem_are_made_and_removed(ex, tmp_path):
    """A rootfs on another filesystem than the pool: runc makes the stubs, we remove them."""
    import shutil
    import tempfile

    from exechelp import make_busybox_rootfs
    if not os.path.isdir("/dev/shm") or os.stat("/dev/shm").st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs /dev/shm on another filesystem")
    where = Path(tempfile.mkdtemp(dir="/dev/shm"))
    try:
        rootfs = make_busybox_rootfs(where / "rootfs")
        before = _snapshot(rootfs)
        result, _ = _run(ex, rootfs, "test -f /etc/hosts && test -d /proc/self")
        assert result.exit_code == 0, result.tail
        assert _snapshot(rootfs) == before
        assert _pool(ex) == {}
    finally:
        shutil.rmtree(where)


def test_stubs_in_enclosing_writable_mount_are_removed(ex, busybox_rootfs, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    result, _ = _run(ex, busybox_rootfs, "echo hi > /out/f; test -d /out/cache/x",
                     mounts=[BindMount("/out", out), TmpfsMount("/out/cache/x")])
    assert result.exit_code == 0, result.tail
    assert sorted(os.listdir(out)) == ["f"]
    assert (out / "f").read_text() == "hi\n"


def test_stub_cleanup_never_follows_a_symlink_the_process_planted(ex, busybox_rootfs, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "hosts").write_text("")  # an empty file, like a stub, outside the root
    (outside / "resolv.conf").write_text("")
    result, _ = _run(ex, busybox_rootfs, f"mv /etc /etc.real && ln -s {outside} /etc")
    assert result.exit_code == 0, result.tail
    assert os.path.islink(busybox_rootfs / "etc")
    assert sorted(os.listdir(outside)) == ["hosts", "resolv.conf"]


def test_what_the_command_created_stays(ex, busybox_rootfs):
    result, _ = _run(ex, busybox_rootfs, "mkdir -p /proc2 && echo x > /etc/newfile")
    assert result.exit_code == 0, result.tail
    assert (busybox_rootfs / "etc" / "newfile").read_text() == "x\n"
    assert (busybox_rootfs / "proc2").is_dir()
    assert not (busybox_rootfs / "proc").exists()


def test_readonly_bind_refuses_writes(ex, busybox_rootfs, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "file").write_text("orig")
    before = _snapshot(src)
    result, lines = _run(ex, busybox_rootfs,
                         "cat /src/file; echo x > /src/file; echo y > /src/new; "
                         "rm -f /src/file; chmod 777 /src/file; mkdir /src/d; true",
                         mounts=[BindMount("/src", src, readonly=True)])
    assert result.exit_code == 0
    err = b"".join(d for s, d in lines if s == "stderr").decode()
    assert err.count("Read-only file system") >= 4, err
    assert (src / "file").read_text() == "orig"
    assert _snapshot(src) == before


def test_writable_bind_and_selector_semantics_are_the_callers(ex, busybox_rootfs, tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    result, _ = _run(ex, busybox_rootfs, "echo w > /data/new",
                     mounts=[BindMount("/data", src / "sub")])
    assert result.exit_code == 0
    assert (src / "sub" / "new").read_text() == "w\n"


def test_readonly_rootfs_refuses_writes(ex, busybox_rootfs):
    before = _snapshot(busybox_rootfs)
    result, lines = _run(ex, busybox_rootfs, "echo x > /newfile || exit 7",
                         readonly_rootfs=True, mounts=[TmpfsMount("/tmp")])
    assert result.exit_code == 7
    assert b"Read-only file system" in b"".join(d for _, d in lines)
    assert _snapshot(busybox_rootfs) == before


def test_tmpfs_is_writable_and_leaves_nothing(ex, busybox_rootfs):
    result, _ = _run(ex, busybox_rootfs, "echo x > /scratch/f && test -f /scratch/f",
                     mounts=[TmpfsMount("/scratch", 1 << 20)])
    assert result.exit_code == 0
    assert not (busybox_rootfs / "scratch").exists()


def test_process_identity_env_cwd_hostname(ex, busybox_rootfs):
    result, lines = _run(ex, busybox_rootfs,
                         'echo "$FOO|$PATH"; id -u; id -g; id -G; pwd; hostname; cat /etc/hosts',
                         env=["FOO=bar"], uid=1000, gid=1000, additional_gids=[10],
                         cwd="/work/dir", hostname="myhost")
    assert result.exit_code == 0, result.tail
    out = [d.decode().rstrip("\n") for s, d in lines if s == "stdout"]
    assert out[0] == "bar|" + executor_mod.DEFAULT_PATH
    assert out[1:4] == ["1000", "1000", "1000 10"]
    assert out[4] == "/work/dir"
    assert out[5] == "myhost"
    assert out[6:8] == ["127.0.0.1\tlocalhost myhost", "::1\tlocalhost ip6-localhost ip6-loopback"]


def test_default_hostname_and_resolv_conf(ex, busybox_rootfs):
    result, lines = _run(ex, busybox_rootfs, "hostname; grep -c nameserver /etc/resolv.conf; "
                         "grep -q 127.0.0 /etc/resolv.conf && echo local || echo nolocal")
    assert result.exit_code == 0
    out = [d.decode().strip() for s, d in lines if s == "stdout"]
    assert out[0] == "buildkitsandbox"
    assert int(out[1]) >= 1
    assert out[2] == "nolocal"


def test_network_none_has_only_lo(ex, busybox_rootfs):
    result, lines = _run(ex, busybox_rootfs, "ls /sys/class/net")
    assert result.exit_code == 0
    assert [d.decode().strip() for s, d in lines if s == "stdout"] == ["lo"]


def test_network_host_sees_host_interfaces(ex, busybox_rootfs):
    result, lines = _run(ex, busybox_rootfs, "ls /sys/class/net", network="host")
    assert result.exit_code == 0
    assert sorted(d.decode().strip() for s, d in lines if s == "stdout") == \
        sorted(os.listdir("/sys/class/net"))


def test_pid_namespace(ex, busybox_rootfs):
    result, lines = _run(ex, busybox_rootfs, "echo $$")
    assert [d for s, d in lines if s == "stdout"] == [b"1\n"]


def test_cancel_kills_the_container(ex, busybox_rootfs):
    cancelled = threading.Event()
    threading.Timer(0.3, cancelled.set).start()
    t = time.monotonic()
    result = ex.run(busybox_rootfs, ProcessSpec(args=["sleep", "30"]), cancelled=cancelled)
    assert result.cancelled
    assert time.monotonic() - t < 5
    assert not (busybox_rootfs / "proc").exists()


def test_missing_runc_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(executor_mod.shutil, "which", lambda name: None)
    with pytest.raises(RuncNotFoundError) as e:
        Executor(tmp_path / "state")
    assert "apt-get install runc" in str(e.value)
    assert e.value.exit_code == 1
