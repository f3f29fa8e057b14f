"""File names are bytes: names that are not UTF-8 (from a context or an exec) go through a
local source, an exec, merge, diff, a FileOp copy, the local and tar exports (GNU tar reads
them back) and llb du, on both snapshotters (issue 10). They used to fail with a
UnicodeEncodeError in the snapshot DB, leaving its transaction open."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from exechelp import runc_problem
from solvehelp import LLB, busybox_root, write

pytestmark = pytest.mark.skipif(runc_problem() is not None, reason=runc_problem() or "")

BUILD = r'''
import llb

def base():
    return llb.local("rootfs").env("PATH", "/bin")

def made():
    return base().run(["sh", "-c",
        "busybox touch \"$(busybox printf 'exe\\351')\" && "
        "busybox mkdir \"$(busybox printf 'd\\376')\" && "
        "echo made > \"$(busybox printf 'd\\376/f\\351')\""]).root()

def merged():
    return llb.merge([llb.local("ctx"), made()])

def diffed():
    return llb.diff(base(), made())

def copied():
    return llb.scratch().file(llb.copy(llb.local("ctx"), "/", "/c/", create_dest_path=True))

def exec_on():
    return made().run(["sh", "-c", "[ -f \"/$(busybox printf 'exe\\351')\" ] && "
                               "busybox printf 'seen\\351' > /found"]).root()
'''


def _names(root: Path) -> set[bytes]:
    out = set()
    for dirpath, dirnames, filenames in os.walk(os.fsencode(root)):
        for n in dirnames + filenames:
            out.add(os.path.relpath(os.path.join(dirpath, n), os.fsencode(root)))
    return out


def test_names_that_are_not_utf8_go_everywhere(llb_root: LLB, tmp_path: Path):
    build = write(tmp_path / "build.py", BUILD)
    rootfs = busybox_root(tmp_path / "rootfs")
    ctx = os.fsencode(tmp_path / "ctx")
    os.mkdir(ctx)
    with open(ctx + b"/caf\xe9", "wb") as f:
        f.write(b"latin-1 name")
    os.mkdir(ctx + b"/d\xff")
    with open(ctx + b"/d\xff/g\xe9", "wb") as f:
        f.write(b"nested")
    os.symlink(b"caf\xe9", ctx + b"/l\xe9")
    os.setxattr(ctx + b"/caf\xe9", b"user.n\xe9", b"x")  # an xattr name that is not UTF-8 either
    locals_ = ["--local", f"rootfs={rootfs}", "--local", f"ctx={os.fsdecode(ctx)}"]

    def solve(target: str, out: str) -> Path:
        dest = tmp_path / target
        kind = "tar" if out == "tar" else "local"
        r = llb_root.solve(build, "--target", target, *locals_,
                           "--output", f"type={kind},dest={dest}")
        assert r.code == 0, r.stderr
        assert "Traceback" not in r.stderr
        return dest

    ours = {b"caf\xe9", b"d\xff", b"d\xff/g\xe9", b"l\xe9"}
    made = {b"exe\xe9", b"d\xfe", b"d\xfe/f\xe9"}
    out = solve("merged", "local")
    assert ours | made <= _names(out)
    assert (out / os.fsdecode(b"caf\xe9")).read_bytes() == b"latin-1 name"
    assert os.readlink(os.fsencode(out) + b"/l\xe9") == b"caf\xe9"
    assert os.getxattr(os.fsencode(out) + b"/caf\xe9", b"user.n\xe9") == b"x"
    assert (out / os.fsdecode(b"d\xfe/f\xe9")).read_bytes() == b"made\n"

    tar = solve("diffed", "tar")
    listed = subprocess.run(["tar", "--quoting-style=literal", "-tf", str(tar)], check=True,
                            capture_output=True).stdout
    assert sorted(listed.splitlines()) == [b"d\xfe/", b"d\xfe/f\xe9", b"exe\xe9"]
    x = tmp_path / "x"
    x.mkdir()
    subprocess.run(["tar", "-xf", str(tar), "-C", str(x)], check=True)
    assert (x / os.fsdecode(b"d\xfe/f\xe9")).read_bytes() == b"made\n"

    out = solve("copied", "local")
    assert {b"c/" + n for n in ours} <= _names(out)
    assert (out / os.fsdecode(b"c/d\xff/g\xe9")).read_bytes() == b"nested"

    out = solve("exec_on", "local")
    assert (out / "found").read_bytes() == b"seen\xe9" and b"exe\xe9" in _names(out)

    for args in (("du",), ("du", "--verbose"), ("prune", "--all"), ("du",)):
        r = llb_root(*args)
        assert r.code == 0 and "Traceback" not in r.stderr, r.stderr
