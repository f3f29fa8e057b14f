"""Trees deeper than any recursion limit, through the CLI on both snapshotters (issue 10):
an exec makes /deep with 1100 nested directories; du, prune, later solves, a FileOp copy and
rm of it, merge and diff with it, an exec on it, the tar and local exports and `llb.local`
of such a host directory all work. A tree whose paths no longer fit PATH_MAX is refused
with one clear line, and the root stays usable."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from deephelp import make_chain
from exechelp import runc_problem
from llb.fsutil import walk
from solvehelp import LLB, busybox_root, write

pytestmark = [pytest.mark.skipif(runc_problem() is not None, reason=runc_problem() or ""),
              pytest.mark.usefixtures("no_deep_leftovers")]

DEPTH = 1100

BUILD = '''
import llb

def chain(top, n, name="a"):
    """sh: make top/NAME/NAME/... (n levels) and cd to its bottom."""
    return (f"busybox mkdir -p {top} && cd {top} && i=0; while [ $i -lt {n} ]; do "
            f"busybox mkdir {name} && cd {name} || exit 9; i=$((i+1)); done")

def base():
    return llb.local("rootfs").env("PATH", "/bin")

def deep():
    return base().run(["sh", "-c", chain("/deep", %(depth)d) + " && echo bottom > f"]).root()

def build():
    return deep()

def copied_removed():
    return deep().file(llb.copy(deep(), "/deep", "/copied")).file(llb.rm("/deep"))

def merged():
    return llb.merge([llb.scratch().file(llb.mkfile("/x", b"x")), deep()])

def diffed():
    return llb.diff(base(), deep())

def exec_on():
    return deep().run(["sh", "-c", "busybox find /deep | busybox wc -l > /count"]).root()

def local():
    return llb.local("ctx")

LONG = "n" * 200

def too_deep():
    # 15 levels of 200-byte names, and 15 more moved in below (a shell cannot cd that
    # deep): 6000 bytes of path
    return base().run(["sh", "-c", chain("/c", 15, LONG) + " && cd / && "
                       + chain("/deep", 15, LONG) + " && busybox mv /c ."]).root()

def small():
    return base().run(["sh", "-c", "echo ok > /ok"]).root()
''' % {"depth": DEPTH}


def _bottom(root: Path, name: str) -> tuple[int, bytes]:
    """Depth (directories above it below root) and content of the one file called name."""
    for e in walk(root):
        if e.name == name and not e.is_dir:
            fd = os.open(e.name, os.O_RDONLY, dir_fd=e.dir_fd)
            try:
                return e.rel.count("/"), os.read(fd, 100)
            finally:
                os.close(fd)
    raise AssertionError(f"no {name} below {root}")


def _ok(r) -> None:
    assert r.code == 0, r.stderr
    assert "Traceback" not in r.stderr and "RecursionError" not in r.stderr


def test_a_tree_1100_levels_deep_works_everywhere(llb_root: LLB, tmp_path: Path):
    build = write(tmp_path / "build.py", BUILD)
    rootfs = busybox_root(tmp_path / "rootfs")
    (tmp_path / "ctx").mkdir()
    make_chain(tmp_path / "ctx", DEPTH, "b", "leaf", b"deep leaf")
    locals_ = ["--local", f"rootfs={rootfs}", "--local", f"ctx={tmp_path / 'ctx'}"]

    def solve(target: str, *out: str):
        r = llb_root.solve(build, "--target", target, *locals_, *out)
        _ok(r)
        return r

    solve("deep", "--output", f"type=local,dest={tmp_path / 'out'}")
    assert _bottom(tmp_path / "out" / "deep", "f") == (DEPTH, b"bottom\n")
    _ok(llb_root("du"))
    _ok(llb_root("du", "--verbose"))

    solve("diffed", "--output", f"type=tar,dest={tmp_path / 'deep.tar'}")
    names = subprocess.run(["tar", "-tf", str(tmp_path / "deep.tar")], check=True,
                           capture_output=True, text=True).stdout.splitlines()
    assert names[0] == "deep/" and names[-1] == "deep/" + "a/" * DEPTH + "f"
    assert len(names) == DEPTH + 2  # the diff holds /deep only

    for target, check in [
        ("copied_removed", lambda o: not (o / "deep").exists()
         and _bottom(o / "copied", "f") == (DEPTH, b"bottom\n")),
        ("merged", lambda o: (o / "x").read_bytes() == b"x" and (o / "bin").is_dir()
         and _bottom(o / "deep", "f") == (DEPTH, b"bottom\n")),
        ("exec_on", lambda o: (o / "count").read_text().strip() == str(DEPTH + 2)),
        ("local", lambda o: _bottom(o, "leaf") == (DEPTH, b"deep leaf")),
    ]:
        out = tmp_path / f"out-{target}"
        solve(target, "--output", f"type=local,dest={out}")
        assert check(out), target

    _ok(llb_root("prune"))
    _ok(llb_root("prune", "--all"))
    _ok(llb_root("du"))
    solve("small")  # the root still solves


def test_a_tree_deeper_than_path_max_fails_clearly_and_the_root_stays_usable(
        llb_root: LLB, tmp_path: Path):
    build = write(tmp_path / "build.py", BUILD)
    rootfs = busybox_root(tmp_path / "rootfs")
    (tmp_path / "ctx").mkdir()
    make_chain(tmp_path / "ctx", 25, "n" * 200)  # 5000 bytes of path
    locals_ = ["--local", f"rootfs={rootfs}", "--local", f"ctx={tmp_path / 'ctx'}"]
    for target in ("too_deep", "local"):
        r = llb_root.solve(build, "--target", target, *locals_, progress="plain")
        assert r.code == 1, r.stderr
        err = [ln for ln in r.stderr.splitlines() if ln.startswith("error: ")]
        assert len(err) == 1 and "path too long" in err[0] and "PATH_MAX" in err[0], err
        assert len(err[0].partition("path too long")[2]) < 300  # the path is shortened
        assert "Traceback" not in r.stderr
        _ok(llb_root("du"))
    _ok(llb_root("prune", "--all"))
    r = llb_root.solve(build, "--target", "small", *locals_,
                       "--output", f"type=local,dest={tmp_path / 'out'}")
    _ok(r)
    assert (tmp_path / "out" / "ok").read_text() == "ok\n"
