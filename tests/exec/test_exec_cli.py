"""Exec through `llb solve` (the real process) on the busybox base, both snapshotters."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from exechelp import BUSYBOX_PRELUDE, LOCALS, needs_runc, tree_of

pytestmark = needs_runc

LLB = str(Path(sys.executable).parent / "llb")

PRELUDE = f'''
{BUSYBOX_PRELUDE}busybox = _bb.busybox
'''


@pytest.fixture(scope="module", params=["native", "overlayfs"])
def cli_root(request, tmp_path_factory):
    """One llb root per snapshotter for this module (the busybox base is built once)."""
    tmp = tmp_path_factory.mktemp(f"cli-{request.param}")
    if request.param == "overlayfs":
        from llb.snapshot.mount import overlay_works
        if not overlay_works(tmp / "probe"):
            pytest.skip("overlayfs mounts do not work here")
    return tmp / "root", request.param


@pytest.fixture
def solve(cli_root, tmp_path):
    """solve(build_source, *args) -> (exit code, stderr, tree of the local output)."""
    root, snapshotter = cli_root
    counter = iter(range(100))

    def run(source: str, *args: str):
        n = next(counter)
        build = tmp_path / f"build{n}.py"
        build.write_text(PRELUDE + source)
        out = tmp_path / f"out{n}"
        progress = [] if "--progress" in args else ["--progress", "plain"]
        argv = [LLB, "solve", str(build), "--root", str(root), "--snapshotter", snapshotter,
                *progress, "--output", f"type=local,dest={out}",
                *[f"--local={k}={v}" for k, v in LOCALS.items()], *args]
        p = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        tree = tree_of(out) if out.is_dir() else None
        return p.returncode, p.stderr, tree

    return run


def test_exec_writes_deletes_and_chmods(solve):
    code, err, tree = solve('''
def build():
    base = busybox().file(llb.mkdir("/data").mkfile("/data/old", "old").mkfile("/data/x", "x"))
    return base.run("sh -c 'echo new > /data/new && rm /data/old && chmod 0600 /data/x "
                    "&& mkdir -p /data/d/e && ln -s new /data/link'").root()
''')
    assert code == 0, err
    assert tree["/data/new"] == ("f", 0o644, b"new\n")
    assert "/data/old" not in tree
    assert tree["/data/x"] == ("f", 0o600, b"x")
    assert tree["/data/d/e"] == ("d", 0o755)
    assert tree["/data/link"] == ("l", "new")
    assert tree["/bin/sh"] == ("l", "/bin/busybox")
    for stub in ("/proc", "/dev", "/sys", "/etc/hosts", "/etc/resolv.conf"):
        assert stub not in tree


def test_exec_diff_holds_only_the_commands_changes(solve):
    code, err, tree = solve('''
def build():
    base = busybox()
    run = base.run(["sh", "-c", "echo hi > /root/hi"],
                   mounts=[llb.mount("/src", llb.scratch().file(llb.mkfile("/f", "f")),
                                     readonly=True),
                           llb.tmpfs("/scratch"), llb.cache_mount("/var/cache/x", id="x")])
    return llb.diff(base, run.root())
''')
    assert code == 0, err
    assert tree == {"/root": ("d", 0o700), "/root/hi": ("f", 0o644, b"hi\n")}


def test_readonly_mount_refuses_writes(solve):
    code, err, tree = solve('''
def build():
    src = llb.scratch().file(llb.mkdir("/d").mkfile("/d/f", "orig"))
    run = busybox().run(["sh", "-c",
        "for c in 'echo x > /src/d/f' 'touch /src/new' 'rm /src/d/f' 'chmod 777 /src/d'; do "
        "  if sh -c \\"$c\\" 2>/dev/null; then echo \\"wrote: $c\\"; else echo refused; fi; "
        "done > /out/result"],
        mounts=[llb.mount("/src", src, readonly=True), llb.mount("/out", llb.scratch())])
    return llb.merge([src, run.get_mount("/out")])
''')
    assert code == 0, err
    assert tree["/result"] == ("f", 0o644, b"refused\n" * 4)
    assert tree["/d/f"] == ("f", 0o644, b"orig")
    assert tree["/d"] == ("d", 0o755)
    assert set(tree) == {"/d", "/d/f", "/result"}


def test_readonly_rootfs_refuses_writes(solve):
    code, err, tree = solve('''
def build():
    run = busybox().run(["sh", "-c",
        "(touch /newfile 2>&1 && echo wrote || echo refused) > /out/result"],
        readonly_rootfs=True, mounts=[llb.mount("/out", llb.scratch())])
    return run.get_mount("/out")
''')
    assert code == 0, err
    assert tree["/result"][2].endswith(b"refused\n")
    assert b"Read-only file system" in tree["/result"][2]


def test_cache_mount_keeps_content_across_solves_and_is_in_no_output(solve):
    src = '''
def build():
    run = busybox().run(["sh", "-c", "echo run >> /cache/log && cp /cache/log /seen"],
                        mounts=[llb.cache_mount("/cache", id="cli-cache")])
    return run.root()
'''
    code, err, tree1 = solve(src)
    assert code == 0, err
    assert tree1["/seen"] == ("f", 0o644, b"run\n")
    code, err, tree2 = solve(src, "--no-cache")
    assert code == 0, err
    assert tree2["/seen"] == ("f", 0o644, b"run\nrun\n")
    for tree in (tree1, tree2):
        assert not any(p.startswith("/cache") for p in tree)


def test_du_lists_cache_mounts_and_prune_all_empties_them(solve, cli_root):
    root, snapshotter = cli_root
    src = '''
def build():
    run = busybox().run(["sh", "-c", "head -c 200000 /dev/zero >> /cache/blob; wc -c < /cache/blob > /seen"],
                        mounts=[llb.cache_mount("/cache", id="du-cache")])
    return run.root()
'''
    code, err, tree = solve(src)
    assert code == 0, err
    assert tree["/seen"][2].strip() == b"200000"
    du = subprocess.run([LLB, "du", "--root", str(root)], capture_output=True, text=True)
    assert du.returncode == 0, du.stderr
    line = [ln for ln in du.stdout.splitlines() if ln.endswith("cache mount du-cache")]
    assert len(line) == 1 and "kB" in line[0]  # 200 kB of cache content
    p = subprocess.run([LLB, "prune", "--all", "--root", str(root), "--snapshotter", snapshotter],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    du = subprocess.run([LLB, "du", "--root", str(root)], capture_output=True, text=True)
    line = [ln for ln in du.stdout.splitlines() if ln.endswith("cache mount du-cache")]
    assert not line or line[0].split()[2] in ("0B", "4.10kB", "8.19kB"), du.stdout  # id + lock only
    code, err, tree = solve(src)  # the cache mount starts empty again
    assert code == 0, err
    assert tree["/seen"][2].strip() == b"200000"


def test_get_mount_output(solve):
    code, err, tree = solve('''
def build():
    seed = llb.scratch().file(llb.mkdir("/sub").mkfile("/sub/in", "in"))
    run = busybox().run(["sh", "-c", "cat /w/in > /w/out && mkdir /w/dir && rm /w/in"],
                        mounts=[llb.mount("/w", seed, selector="/sub")])
    return run.get_mount("/w")
''')
    assert code == 0, err
    assert tree == {"/sub": ("d", 0o755), "/sub/out": ("f", 0o644, b"in"),
                    "/sub/dir": ("d", 0o755)}


def test_merge_of_two_execs_on_one_base(solve):
    code, err, tree = solve('''
def build():
    base = busybox().file(llb.mkdir("/data").mkfile("/data/shared", "base")
                          .mkfile("/data/doomed", "x"))
    one = base.run("sh -c 'echo one > /data/one && rm /data/doomed'").root()
    two = base.run("sh -c 'echo two > /data/two && echo two > /data/shared'").root()
    return llb.merge([one, two])
''')
    assert code == 0, err
    assert tree["/data/one"] == ("f", 0o644, b"one\n")
    assert tree["/data/two"] == ("f", 0o644, b"two\n")
    assert tree["/data/shared"] == ("f", 0o644, b"two\n")
    # two's chain re-applies base's layers, which recreate what one deleted
    assert tree["/data/doomed"] == ("f", 0o644, b"x")
    assert tree["/bin/sh"] == ("l", "/bin/busybox")


def test_exec_on_merge_merged_again_keeps_the_first_merges_deletions(solve):
    code, err, tree = solve('''
def build():
    a = llb.scratch().file(llb.mkfile("/foo", "A").mkfile("/a", "A"))
    b = a.file(llb.rm("/foo")).file(llb.mkfile("/b", "B"))
    merged = llb.merge([busybox(), b])
    ran = merged.run("sh -c 'ls / > /listing'").root()
    e = llb.scratch().file(llb.mkfile("/foo", "E").mkfile("/e", "E"))
    return llb.merge([e, ran])
''')
    assert code == 0, err
    assert "/foo" not in tree  # b deleted it; b's layer is inside ran's chain (#2335)
    assert tree["/e"] == ("f", 0o644, b"E")
    assert tree["/a"] == ("f", 0o644, b"A") and tree["/b"] == ("f", 0o644, b"B")
    assert b"foo" not in tree["/listing"][2]


def test_output_streams_into_progress_in_whole_lines(solve):
    code, err, _ = solve('''
def build():
    return busybox().run(["sh", "-c", "echo one; echo two >&2; printf 'three\\nfour'"]).root()
''', "--progress", "json")
    assert code == 0, err
    events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    name = 'exec sh -c "echo one; echo two >&2; printf \'three\\nfour\'"'
    logs = [(e["stream"], e["data"]) for e in events if e["event"] == "log"]
    assert all(e["name"] == name for e in events if e["event"] == "log")
    # an event holds the whole lines of one read (BuildKit: one per write), the last
    # unfinished line once the process is done
    stdout = [d for s, d in logs if s == "stdout"]
    assert "".join(stdout) == "one\nthree\nfour" and stdout[-1].endswith("four")
    assert all(d.endswith("\n") for d in stdout[:-1])
    assert [d for s, d in logs if s == "stderr"] == ["two\n"]
    kinds = [e["event"] for e in events if e["name"] == name]
    assert kinds[0] == "start" and kinds[-1] == "done" and set(kinds[1:-1]) == {"log"}


def test_failing_command_exits_1_with_buildkits_wording(solve):
    code, err, tree = solve('''
def build():
    return busybox().run(["sh", "-c", "echo about to fail; echo oops >&2; exit 2"]).root()
''')
    assert code == 1
    assert 'process "sh -c echo about to fail; echo oops >&2; exit 2" did not complete ' \
           'successfully: exit code: 2' in err
    assert "oops" in err and "about to fail" in err
    assert "Traceback" not in err


def test_missing_command_fails_with_runcs_reason(solve):
    code, err, _ = solve('''
def build():
    return busybox().run(["no-such-tool", "x"]).root()
''')
    assert code == 1
    assert 'process "no-such-tool x" did not complete successfully' in err
    assert "executable file not found" in err


def test_duplicate_cache_mounts_share_one_directory(solve):
    """BuildKit's testDuplicateCacheMount: one exec mounting a cache id twice, locked, sees
    one directory at both (it used to wait for its own lock forever); a shared and a locked
    mount of one id too; two private mounts of one id get an instance each."""
    code, err, tree = solve('''
def build():
    run = busybox().run(["sh", "-e", "-c",
        "[ ! -f /m1/foo ]; touch /m1/foo; [ -f /m2/foo ]; "
        "touch /s1/bar; [ -f /s2/bar ]; "
        "touch /p1/baz; [ ! -f /p2/baz ]; echo ok > /out/result"],
        mounts=[llb.cache_mount("/m1", id="dup-locked", sharing="locked"),
                llb.cache_mount("/m2", id="dup-locked", sharing="locked"),
                llb.cache_mount("/s1", id="dup-mixed", sharing="shared"),
                llb.cache_mount("/s2", id="dup-mixed", sharing="locked"),
                llb.cache_mount("/p1", id="dup-private", sharing="private"),
                llb.cache_mount("/p2", id="dup-private", sharing="private"),
                llb.mount("/out", llb.scratch())])
    return run.get_mount("/out")
''', "--no-cache")
    assert code == 0, err
    assert tree == {"/result": ("f", 0o644, b"ok\n")}


def test_step_output_is_clipped_at_2_mib_per_stream(solve):
    """BuildKit clips a step's log at 2 MiB per stream and says so; the output of an exec
    printing 6 MiB used to reach stderr whole (60 MB of output gave 73 MB of progress). The
    tail of a failure is still the real end of the output."""
    code, err, _ = solve('''
def build():
    return busybox().run(["sh", "-c", "yes 0123456789abcdef | head -c 6291456; "
                          "yes err | head -c 3145728 >&2; echo; echo the-end; exit 3"]).root()
''', "--progress", "json", "--no-cache")
    assert code == 1
    events = [json.loads(ln) for ln in err.splitlines() if ln.startswith("{")]
    logs = [e for e in events if e["event"] == "log"]
    for stream in ("stdout", "stderr"):
        data = "".join(e["data"] for e in logs if e["stream"] == stream)
        assert data.count("[output clipped, log limit 2MiB reached]") == 1
        assert len(data) <= (2 << 20) + 64
        assert "the-end" not in data
    assert len(err) < 8 << 20, len(err)
    failed = [e for e in events if e["event"] == "error" and e["error"] != "cancelled"]
    assert len(failed) == 1 and "exit code: 3" in failed[0]["error"]
    plain_code, plain_err, _ = solve('''
def build():
    return busybox().run(["sh", "-c", "yes 0123456789abcdef | head -c 6291456; "
                          "echo; echo the-end; exit 3"]).root()
''', "--no-cache")
    assert plain_code == 1
    assert "[output clipped, log limit 2MiB reached]" in plain_err
    assert len(plain_err) < 6 << 20, len(plain_err)
    assert "  the-end" in plain_err.splitlines()  # the log tail under the error line


@pytest.mark.parametrize("what,src,message", [
    ("uid", 'busybox().user("4294967296").run(["true"]).root()', "out of range"),
    ("gid", 'busybox().user("0:4294967296").run(["true"]).root()', "out of range"),
    ("owner", 'busybox().file(llb.mkfile("/a", "x", owner="4294967296:0"))', "out of range"),
    ("cwd component", 'busybox().cwd("/" + "c" * 300).run(["true"]).root()',
     "component of 300 bytes"),
    ("cwd length", 'busybox().cwd("/" + "/".join(["d" * 200] * 25)).run(["true"]).root()',
     "bytes long (Linux takes at most 4095)"),
    ("cwd under the rootfs", 'busybox().cwd("/" + "/".join(["e" * 203] * 20) + "/abcdefghijklm")'
     '.run(["true"]).root()', "cannot create the working directory"),
    ("passwd id", 'busybox().file(llb.mkfile("/etc/passwd", "big:x:4294967296:0::/:/bin/sh\\n"))'
     '.user("big").run(["true"]).root()', "invalid id '4294967296'"),
], ids=lambda v: v if " " not in v or len(v) < 30 else None)
def test_ids_and_cwds_linux_cannot_take_are_one_line_exit_2(solve, what, src, message):
    """uid 4294967296 or an over-long cwd gave runc's raw JSON error (exit 1); they are bad
    input, told before runc runs (most when the definition is checked)."""
    code, err, _ = solve(f"def build():\n    return {src}\n")
    assert code == 2, err
    errors = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and message in errors[0], err
    assert "json:" not in err and "Traceback" not in err and "runc" not in err
