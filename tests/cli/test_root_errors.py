"""An llb root that cannot be used (issue 10, item 10): under a regular file, on a read-only
filesystem, or a special directory like /proc/self is one `error:` line and exit 2 for
`llb solve` and `llb prune`, never a traceback."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from solvehelp import LLB_PATH, Run, run, write

BUILD = '''
import llb

def build():
    return llb.scratch().file(llb.mkfile("/a", b"a"))
'''

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: mounts")


@pytest.fixture(params=["overlayfs", "native"])
def snapshotter(request) -> str:
    return request.param


def _one_line_error(r: Run, root: object) -> None:
    assert r.code == 2, r.stderr
    assert "Traceback" not in r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1, r.stderr
    assert f"cannot use {root} as llb's root" in errors[0]


def _solve(build: Path, root: Path | str, snapshotter: str) -> Run:
    return run([LLB_PATH, "solve", str(build), "--root", str(root), "--snapshotter",
                snapshotter, "--progress", "plain"])


@pytest.fixture
def readonly(tmp_path: Path):
    """mount(dir) makes dir a read-only bind mount of itself until the test ends."""
    mounted: list[Path] = []

    def mount(d: Path) -> Path:
        subprocess.run(["mount", "--bind", str(d), str(d)], check=True)
        mounted.append(d)
        subprocess.run(["mount", "-o", "remount,bind,ro", str(d)], check=True)
        return d

    yield mount
    for d in reversed(mounted):
        subprocess.run(["umount", "-l", str(d)], check=False)


def test_root_under_a_regular_file(tmp_path: Path, snapshotter: str):
    build = write(tmp_path / "build.py", BUILD)
    (tmp_path / "file").write_text("x")
    root = tmp_path / "file" / "root"
    r = _solve(build, root, snapshotter)
    _one_line_error(r, root)
    assert "Not a directory" in r.stderr


def test_root_in_proc_self(tmp_path: Path, snapshotter: str):
    build = write(tmp_path / "build.py", BUILD)
    for root in ("/proc/self", "/proc/self/fd"):
        _one_line_error(_solve(build, root, snapshotter), root)
        _one_line_error(run([LLB_PATH, "prune", "--root", root]), root)


def test_root_on_a_read_only_filesystem(tmp_path: Path, snapshotter: str, readonly):
    build = write(tmp_path / "build.py", BUILD)
    empty = tmp_path / "empty"
    empty.mkdir()
    readonly(empty)
    for root in (empty, empty / "root"):
        r = _solve(build, root, snapshotter)
        _one_line_error(r, root)
        assert "Read-only file system" in r.stderr
    # a root that was used, then made read-only: solve, prune and du say so
    used = tmp_path / "used"
    assert _solve(build, used, snapshotter).code == 0
    readonly(used)
    _one_line_error(_solve(build, used, snapshotter), used)
    _one_line_error(run([LLB_PATH, "prune", "--all", "--root", str(used)]), used)
    _one_line_error(run([LLB_PATH, "du", "--root", str(used)]), used)
