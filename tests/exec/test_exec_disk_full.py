"""A full disk (issue 10, item 4), through the CLI on both snapshotters, with a loop-mounted
small ext4 as the root and as the export destination: every command ends in one line,
`error: no space left on device (root|destination PATH)`, exit 1 (a full disk is no bad
input), never a traceback or SIGBUS; nothing half-written is kept; `llb prune` frees a
full disk; the next solve is correct."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from exechelp import BUSYBOX_PRELUDE, LOCALS, needs_runc
from loopfs import LoopFS, loop_problem
from rootcheck import problems

pytestmark = [needs_runc, pytest.mark.skipif(loop_problem() is not None,
                                             reason=loop_problem() or "")]

LLB = str(Path(sys.executable).parent / "llb")

BUILD = f'''
{BUSYBOX_PRELUDE}

def build():
    tag, kib = os.environ["TAG"], os.environ.get("KIB", "1")
    data = llb.scratch().file(llb.mkfile("/data", "d" * 50000))
    root = llb.merge([_bb.busybox(), data])
    cmd = f"echo {{tag}} > /tag; dd if=/dev/zero of=/big bs=1k count={{kib}}"
    return root.run(["sh", "-c", cmd]).root()
'''


@pytest.fixture(params=["overlayfs", "native"])
def disk(request, tmp_path: Path):
    """(loop fs, llb root on it, snapshotter); the busybox base is solved there first."""
    if request.param == "overlayfs":
        from llb.snapshot.mount import overlay_works
        if not overlay_works(tmp_path / "probe"):
            pytest.skip("overlayfs mounts do not work here")
    (tmp_path / "build.py").write_text(BUILD)
    fs = LoopFS(tmp_path / "rootfs", 64)
    root = fs.mnt / "root"
    try:
        r = _solve(root, request.param, "base")
        assert r.returncode == 0, r.stderr
        yield fs, root, request.param
    finally:
        subprocess.run([LLB, "du", "--root", str(root)], capture_output=True)  # reap all
        fs.close()


def _solve(root: Path, snapshotter: str, tag: str, kib: int = 1, output: str | None = None,
           build: Path | None = None) -> subprocess.CompletedProcess:
    build = build or root.parent.parent.parent / "build.py"
    argv = [LLB, "solve", str(build), "--root", str(root), "--snapshotter", snapshotter,
            "--progress", "plain", *[f"--local={k}={v}" for k, v in LOCALS.items()]]
    if output:
        argv += ["--output", output]
    return subprocess.run(argv, capture_output=True, text=True, timeout=180,
                          env=dict(os.environ, TAG=tag, KIB=str(kib)))


def _llb(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([LLB, *args], capture_output=True, text=True, timeout=180)


def _one_error_line(p: subprocess.CompletedProcess) -> str:
    """The one `error:` line of a failed command (no traceback, no signal death)."""
    assert p.returncode == 1, (p.returncode, p.stderr[-2000:])
    assert "Traceback" not in p.stderr and "Fatal Python error" not in p.stderr, p.stderr
    errors = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, p.stderr[-2000:]
    return errors[0]


def test_a_full_root_fails_every_command_in_one_line_and_prune_frees_it(disk):
    fs, root, snapshotter = disk
    assert fs.fill(0) == 0
    full = f"error: no space left on device (root {root})"
    assert _one_error_line(_solve(root, snapshotter, "new")) == full
    assert _one_error_line(_llb("du", "--root", str(root))) == full
    # a cached solve needs to write too (it holds what it uses): the same line
    assert _one_error_line(_solve(root, snapshotter, "base")) == full
    p = _llb("prune", "--all", "--root", str(root))
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("Removed ") and int(p.stdout.split()[1]) >= 4
    assert fs.free_kib() > 1024  # the snapshots' bytes came back (the reserve, if room)
    assert problems(root) == []
    fs.unfill()
    r = _solve(root, snapshotter, "after", output=f"type=local,dest={root.parent.parent}/out")
    assert r.returncode == 0, r.stderr
    assert (root.parent.parent / "out" / "tag").read_text() == "after\n"
    assert problems(root) == []


@pytest.mark.parametrize("free_kib", [32, 600, 1200])
def test_a_few_kib_free_is_one_line_never_a_crash(disk, free_kib):
    """Solves whose exec writes about as much as is free: they fail wherever the disk fills
    (opening a database, the run itself, committing, recording) or succeed; a failure is
    one error line, exit 1, and leaves the root consistent; the next solve is right."""
    fs, root, snapshotter = disk
    for i, kib in enumerate((free_kib // 2, free_kib, free_kib + 300)):
        fs.fill(free_kib)
        r = _solve(root, snapshotter, f"t{free_kib}-{i}", kib=kib)
        if r.returncode != 0:  # llb met the full disk, or the command itself did
            line = _one_error_line(r)
            assert line.startswith(f"error: no space left on device (root {root})") or \
                ("did not complete successfully" in line and
                 "No space left on device" in r.stderr), r.stderr
        fs.unfill()
        assert problems(root, settled=False) == []
    out = root.parent.parent / "out"
    r = _solve(root, snapshotter, "next", output=f"type=local,dest={out}")
    assert r.returncode == 0, r.stderr
    assert (out / "tag").read_text() == "next\n" and len((out / "data").read_bytes()) == 50000


@pytest.mark.parametrize("free_kib", [0, 1000])
def test_a_full_destination_is_one_line_and_no_half_file(disk, tmp_path, free_kib):
    fs, root, snapshotter = disk
    dest_fs = LoopFS(tmp_path / "destfs", 16)
    try:
        dest = dest_fs.mnt
        line = f"error: no space left on device (destination {dest}/out"
        dest_fs.fill(free_kib)
        before = sorted(os.listdir(dest))
        r = _solve(root, snapshotter, "d", output=f"type=tar,dest={dest}/out.tar")
        assert _one_error_line(r) == line + ".tar)"
        assert sorted(os.listdir(dest)) == before  # no temporary, no half tar
        r = _solve(root, snapshotter, "d", output=f"type=local,dest={dest}/out")
        assert _one_error_line(r) == line + ")"
        # what the local export wrote is whole: every file it left matches the result
        ref = tmp_path / "ref"
        assert _solve(root, snapshotter, "d", output=f"type=local,dest={ref}").returncode == 0
        for dirpath, _dirs, files in os.walk(dest / "out"):
            for name in files:
                got = Path(dirpath, name)
                want = ref / got.relative_to(dest / "out")
                assert got.read_bytes() == want.read_bytes(), got
        p = subprocess.run([LLB, "marshal", str(root.parent.parent.parent / "build.py"), "-o",
                            f"{dest}/def"], capture_output=True, text=True,
                           env=dict(os.environ, TAG="d"))
        if free_kib < 100:  # a definition takes a few KiB: with room enough it is written
            assert p.returncode == 1
            assert p.stderr == f"error: no space left on device (destination {dest}/def)\n"
            assert not (dest / "def").exists()
        else:
            assert p.returncode == 0 and (dest / "def").stat().st_size > 1000
        assert problems(root) == []
    finally:
        dest_fs.close()
