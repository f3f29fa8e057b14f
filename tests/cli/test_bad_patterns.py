"""A malformed include/exclude pattern (issue 10, item 10) is bad input: one `error:` line,
exit 2, before anything runs (it used to fail the vertex, exit 1, after solving started)."""

from __future__ import annotations

from pathlib import Path

import pytest

from solvehelp import LLB, llb_root, write  # noqa: F401 (fixture)

BUILD = '''
import llb

def local_include():
    return llb.local("ctx", include=["ok/**", "[z-a]"])

def local_exclude():
    return llb.local("ctx", exclude=["\\\\"])

def copy_include():
    good = llb.scratch().file(llb.mkfile("/a", b"a"))
    bad = llb.scratch().file(llb.copy(llb.local("ctx"), "/", "/out", include=["***/[z-a]"]))
    return llb.merge([good, bad])
'''

CASES = [("local_include", "include pattern '[z-a]' is invalid"),
         ("local_exclude", "exclude pattern '\\\\' is invalid"),
         ("copy_include", "include pattern '***/[z-a]' is invalid")]


@pytest.mark.parametrize("target,message", CASES, ids=[c[0] for c in CASES])
def test_bad_pattern_is_exit_2_before_solving(llb_root: LLB, tmp_path: Path, target: str,
                                              message: str):
    build = write(tmp_path / "build.py", BUILD)
    write(tmp_path / "ctx" / "ok" / "f", "f")
    r = llb_root.solve(build, "--target", target, "--local", f"ctx={tmp_path / 'ctx'}")
    assert r.code == 2, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and message in errors[0], r.stderr
    assert r.events == [], "nothing may start"
    assert "Traceback" not in r.stderr
