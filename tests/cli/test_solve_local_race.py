"""A local source whose files change while it is being copied (issue 10, item 3): the result
is cached under the checksum of what was copied, never under the key taken before the copy.

The race is made deterministic by a hook loaded into the real `llb` process: right after
the local source's content key is taken (the checksum the cache is looked up with), it
rewrites a file of the context, before the sync copies it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from solvehelp import LLB, Run, llb_root, write  # noqa: F401 (fixture)

BUILD = '''
import llb

def build():
    other = llb.scratch().file(llb.mkfile("/other", b"o"))
    return llb.merge([other, llb.local("ctx")])
'''

# Loaded with `-c` before llb's main: wraps the local source's content_key so that, once,
# after the key is computed, the file named by LLB_TEST_RACE_FILE gets new content.
HOOK = '''
import os
import llb.solver.sources.local as local

_key = local.content_key
_path = os.environ["LLB_TEST_RACE_FILE"]
_data = os.environ["LLB_TEST_RACE_DATA"].encode()
_mark = os.environ["LLB_TEST_RACE_MARK"]

def content_key(op, env, vertex):
    key = _key(op, env, vertex)
    with open(_path, "wb") as f:
        f.write(_data)
    open(_mark, "w").close()
    return key

local.content_key = content_key
'''


def _solve_with_race(llb_root: LLB, build: Path, ctx: Path, out: Path, tmp: Path,
                     data: str) -> Run:
    mark = tmp / "hook-ran"
    env = {"LLB_TEST_RACE_FILE": str(ctx / "a.txt"), "LLB_TEST_RACE_DATA": data,
           "LLB_TEST_RACE_MARK": str(mark), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    argv = [sys.executable, "-c", HOOK + "\nfrom llb.cli.main import run\nrun()\n",
            *llb_root.solve_args(build, "--local", f"ctx={ctx}",
                                 "--output", f"type=local,dest={out}")[1:]]
    p = subprocess.run(argv, capture_output=True, timeout=120, env=env)
    assert mark.exists(), "the race hook did not run"
    return Run(p.returncode, p.stdout, p.stderr.decode("utf-8", "replace"))


def _status(run: Run, name_prefix: str) -> str:
    states = {e["name"]: e["event"] for e in run.events if e["event"] in ("cached", "done")}
    return [s for n, s in states.items() if n.startswith(name_prefix)][0]


def test_file_changed_during_copy_is_keyed_by_what_was_copied(llb_root: LLB, tmp_path: Path):
    build = write(tmp_path / "build.py", BUILD)
    ctx = tmp_path / "ctx"
    write(ctx / "a.txt", "one")
    write(ctx / "b.txt", "b")

    # the key is taken of "one"; the copy reads "two"
    r = _solve_with_race(llb_root, build, ctx, tmp_path / "out1", tmp_path, "two")
    assert r.code == 0, r.stderr
    assert (tmp_path / "out1" / "a.txt").read_text() == "two"
    assert (tmp_path / "out1" / "other").read_text() == "o"
    assert "changed while it was read" in r.stderr

    # back to "one", the content the first key was taken of: the cache must not give "two"
    # (before the fix: local source and merge CACHED, a.txt == "two" until a prune)
    (ctx / "a.txt").write_text("one")
    r = llb_root.solve(build, "--local", f"ctx={ctx}", "--output",
                       f"type=local,dest={tmp_path / 'out2'}")
    assert r.code == 0, r.stderr
    assert (tmp_path / "out2" / "a.txt").read_text() == "one"
    assert _status(r, "local://ctx") == "done"
    assert _status(r, "merge") == "done"

    # "two", what the first solve copied, was recorded under its own key: a hit
    (ctx / "a.txt").write_text("two")
    r = llb_root.solve(build, "--local", f"ctx={ctx}", "--output",
                       f"type=local,dest={tmp_path / 'out3'}")
    assert r.code == 0, r.stderr
    assert (tmp_path / "out3" / "a.txt").read_text() == "two"
    assert _status(r, "local://ctx") == "cached"
    assert _status(r, "merge") == "cached"

    # and "one" again: now a hit too, with the right content
    (ctx / "a.txt").write_text("one")
    r = llb_root.solve(build, "--local", f"ctx={ctx}", "--output",
                       f"type=local,dest={tmp_path / 'out4'}")
    assert r.code == 0 and _status(r, "merge") == "cached", r.stderr
    assert (tmp_path / "out4" / "a.txt").read_text() == "one"


def test_unchanged_local_source_is_cached_with_a_socket_in_it(llb_root: LLB, tmp_path: Path):
    """The key of the copy equals the host's (a socket, which is not copied, counts in
    neither), so an unchanged context is a hit."""
    import socket

    build = write(tmp_path / "build.py", BUILD)
    ctx = tmp_path / "ctx"
    write(ctx / "a.txt", "one")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(ctx / "s.sock"))
    try:
        r1 = llb_root.solve(build, "--local", f"ctx={ctx}")
        assert r1.code == 0, r1.stderr
        assert "changed while it was read" not in r1.stderr
        r2 = llb_root.solve(build, "--local", f"ctx={ctx}")
        assert r2.code == 0 and _status(r2, "local://ctx") == "cached", r2.stderr
        assert _status(r2, "merge") == "cached"
    finally:
        sock.close()


HOOK_SAME_SIZE = '''
import os
import llb.solver.sources.local as local

_key = local.content_key
_path = os.environ["LLB_TEST_RACE_FILE"]
_data = os.environ["LLB_TEST_RACE_DATA"].encode()
_mark = os.environ["LLB_TEST_RACE_MARK"]

def content_key(op, env, vertex):
    key = _key(op, env, vertex)
    st = os.stat(_path)
    with open(_path, "wb") as f:
        f.write(_data)
    os.utime(_path, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, same mtime
    open(_mark, "w").close()
    return key

local.content_key = content_key
'''


def test_old_file_rewritten_with_same_size_and_mtime_is_seen(llb_root: LLB, tmp_path: Path):
    """The snapshot's checksum reuses the key's digests of files unchanged since (older
    than two seconds, same identity): a file rewritten after the key, even keeping its size
    and mtime, has a new ctime, so what was copied is hashed and keyed."""
    import time

    build = write(tmp_path / "build.py", BUILD)
    ctx = tmp_path / "ctx"
    write(ctx / "a.txt", "one")
    write(ctx / "b.txt", "b")
    time.sleep(2.2)  # older than the memo's horizon: their digests may be reused
    mark = tmp_path / "hook-ran"
    env = {"LLB_TEST_RACE_FILE": str(ctx / "a.txt"), "LLB_TEST_RACE_DATA": "six",
           "LLB_TEST_RACE_MARK": str(mark), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    out1 = tmp_path / "out1"
    argv = [sys.executable, "-c", HOOK_SAME_SIZE + "\nfrom llb.cli.main import run\nrun()\n",
            *llb_root.solve_args(build, "--local", f"ctx={ctx}",
                                 "--output", f"type=local,dest={out1}")[1:]]
    p = subprocess.run(argv, capture_output=True, timeout=120, env=env)
    assert p.returncode == 0 and mark.exists(), p.stderr
    assert (out1 / "a.txt").read_text() == "six"
    assert b"changed while it was read" in p.stderr
    (ctx / "a.txt").write_text("one")
    r = llb_root.solve(build, "--local", f"ctx={ctx}", "--output",
                       f"type=local,dest={tmp_path / 'out2'}")
    assert r.code == 0 and _status(r, "local://ctx") == "done", r.stderr
    assert (tmp_path / "out2" / "a.txt").read_text() == "one"
