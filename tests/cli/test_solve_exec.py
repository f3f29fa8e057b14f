"""A failing Exec through `llb solve`: exit 1, the vertex, its command and its log tail."""

from __future__ import annotations

from pathlib import Path

import pytest

from exechelp import runc_problem
from solvehelp import LLB, busybox_root, write

pytestmark = pytest.mark.skipif(runc_problem() is not None, reason=runc_problem() or "")

BUILD = '''
import llb

def build():
    base = llb.local("rootfs").env("PATH", "/bin")
    ok = base.run(["sh", "-c", "echo fine > /ok"]).root()
    bad = base.run(["sh", "-c", "echo line-one; echo line-two >&2; exit 3"]).root()
    after = bad.file(llb.mkfile("/after", b"x"))
    return llb.merge([ok, after])
'''


def test_failing_exec_exits_1_with_vertex_command_and_log_tail(llb_root: LLB, tmp_path: Path):
    build = write(tmp_path / "build.py", BUILD)
    rootfs = busybox_root(tmp_path / "rootfs")
    r = llb_root.solve(build, "--local", f"rootfs={rootfs}", progress="plain")
    assert r.code == 1, r.stderr
    lines = r.stderr.splitlines()
    err = [ln for ln in lines if ln.startswith("error: ")]
    assert len(err) == 1
    assert "exec sh -c" in err[0] and "exit 3" in err[0] and "exit code: 3" in err[0]
    assert err[0].startswith("error: [")  # names the vertex by its [n/m] position
    assert "command: sh -c echo line-one; echo line-two >&2; exit 3" in lines
    tail = lines[lines.index("last lines of output:") + 1:]
    # both streams are in the tail; their order across stdout and stderr is not guaranteed
    assert sorted(t.strip() for t in tail) == ["line-one", "line-two"]
    assert "Traceback" not in r.stderr
    j = llb_root.solve(build, "--local", f"rootfs={rootfs}")
    assert j.code == 1
    logs = [e for e in j.events if e["event"] == "log"]
    assert {e["stream"] for e in logs} >= {"stdout", "stderr"}
    errs = {e["name"]: e["error"] for e in j.events if e["event"] == "error"}
    failing = [n for n, msg in errs.items() if msg != "cancelled"]
    assert len(failing) == 1 and "exit 3" in failing[0]
    du = llb_root("du", "--verbose").text
    assert "exit 3" not in du and "mkfile /after" not in du and "merge" not in du
