"""`llb solve` through the real process: caching, minimal rebuilds, failures, progress."""

from __future__ import annotations

import json
from pathlib import Path

from solvehelp import LLB, LLB_PATH, run, write

MERGE3 = '''
import llb

def part(name):
    src = llb.local(name)
    return llb.scratch().file(llb.copy(src, "/", "/" + name, create_dest_path=True))

def build():
    return llb.merge([part("a"), part("b"), part("c")])
'''

COPY_ONE = '''
import llb

def build():
    ctx = llb.local("ctx")
    base = llb.scratch().file(llb.mkdir("/out").mkfile("/out/base.txt", b"base"))
    return base.file(llb.copy(ctx, "/read.txt", "/out/read.txt"))
'''


def _locals(tmp: Path, *names: str) -> list[str]:
    args = []
    for n in names:
        d = tmp / "src" / n
        write(d / f"{n}.txt", f"content of {n}\n")
        args += ["--local", f"{n}={d}"]
    return args


def test_second_solve_is_all_cached_and_changes_nothing(llb_root: LLB, tmp_path: Path):
    build = write(tmp_path / "build.py", MERGE3)
    args = _locals(tmp_path, "a", "b", "c")
    first = llb_root.solve(build, *args)
    assert first.code == 0, first.stderr
    t1 = first.terminal()
    assert len(t1) == 8 and set(t1.values()) == {"done"}  # scratch, 3 locals, 3 copies, merge
    snaps = sorted(p.name for p in (llb_root.root / "snapshots").iterdir())
    du1 = llb_root("du", "--verbose").text

    second = llb_root.solve(build, *args)
    assert second.code == 0, second.stderr
    t2 = second.terminal()
    assert t2.keys() == t1.keys() and set(t2.values()) == {"cached"}
    assert not [e for e in second.events if e["event"] == "start"]
    assert sorted(p.name for p in (llb_root.root / "snapshots").iterdir()) == snaps
    du2 = llb_root("du", "--verbose").text
    strip = [ln for ln in du1.splitlines() if not ln.startswith("Last used")]
    assert strip == [ln for ln in du2.splitlines() if not ln.startswith("Last used")]


def test_editing_a_file_a_copy_does_not_read_keeps_the_copy_cached(llb_root: LLB, tmp_path: Path):
    build = write(tmp_path / "build.py", COPY_ONE)
    ctx = tmp_path / "ctx"
    write(ctx / "read.txt", "read me")
    write(ctx / "other.txt", "not read")
    assert llb_root.solve(build, "--local", f"ctx={ctx}").code == 0
    write(ctx / "other.txt", "edited")
    r = llb_root.solve(build, "--local", f"ctx={ctx}", "--explain")
    assert r.code == 0, r.stderr
    assert r.names("done") == ["local://ctx"]
    assert "copy /read.txt /out/read.txt" in r.names("cached")
    [done] = [e for e in r.events if e["event"] == "done"]
    assert done["explain"] == "source content changed"
    # now edit the file it does read: the copy reruns
    write(ctx / "read.txt", "read me, changed")
    r = llb_root.solve(build, "--local", f"ctx={ctx}", "--explain")
    assert r.names("done") == ["copy /read.txt /out/read.txt", "local://ctx"]
    [copy] = [e for e in r.events if e["event"] == "done" and e["name"].startswith("copy")]
    assert "input 1 (local://ctx): the content read from it changed" in copy["explain"]


def test_changing_one_merge_input_rebuilds_only_its_subgraph(llb_root: LLB, tmp_path: Path):
    build = write(tmp_path / "build.py", MERGE3)
    args = _locals(tmp_path, "a", "b", "c")
    assert llb_root.solve(build, *args).code == 0
    write(tmp_path / "src" / "b" / "b.txt", "b changed\n")
    r = llb_root.solve(build, *args)
    assert r.code == 0, r.stderr
    assert r.names("done") == ["copy / /b", "local://b", "merge (3 inputs)"]
    assert r.names("cached") == ["copy / /a", "copy / /c", "local://a", "local://c", "scratch"]
    assert set(r.terminal().values()) == {"done", "cached"} and len(r.terminal()) == 8


def test_no_cache_runs_everything_again(llb_root: LLB, tmp_path: Path):
    build = write(tmp_path / "build.py", MERGE3)
    args = _locals(tmp_path, "a", "b", "c")
    assert llb_root.solve(build, *args).code == 0
    r = llb_root.solve(build, *args, "--no-cache", "--explain")
    assert r.code == 0
    assert set(r.terminal().values()) == {"done"}
    assert {e["explain"] for e in r.events if e["event"] == "done"} == {"--no-cache"}


def test_progress_json_is_one_object_per_line_with_one_terminal_event_each(llb_root: LLB,
                                                                             tmp_path: Path):
    build = write(tmp_path / "build.py", MERGE3)
    r = llb_root.solve(build, *_locals(tmp_path, "a", "b", "c"))
    assert r.code == 0
    lines = r.stderr.splitlines()
    events = [json.loads(line) for line in lines]  # every line parses
    for e in events:
        assert {"event", "vertex", "name", "time"} <= e.keys()
        assert e["vertex"].startswith("sha256:") and isinstance(e["time"], float)
        if e["event"] == "done":
            assert isinstance(e["duration"], float)
    dump = json.loads(run([LLB_PATH, "dump", str(build), "--format", "json"]).stdout)
    terminal = r.terminal()
    assert set(terminal) == {op["digest"] for op in dump["ops"]} and len(terminal) == 8
    names = set(e["name"] for e in events)
    assert {"merge (3 inputs)", "copy / /a", "local://a", "scratch"} <= names


def test_two_concurrent_solves_run_each_vertex_once(llb_root: LLB, tmp_path: Path):
    import subprocess

    names = [f"p{i}" for i in range(6)]
    src = ["import llb", "def build():", "    parts = []"]
    for n in names:
        src.append(f"    parts.append(llb.scratch().file(llb.copy(llb.local({n!r}), '/', '/{n}',"
                   " create_dest_path=True)))")
    src.append("    return llb.merge(parts)")
    build = write(tmp_path / "build.py", "\n".join(src) + "\n")
    args = []
    for n in names:
        d = tmp_path / "src" / n
        for k in range(50):
            write(d / f"f{k}.txt", f"{n} {k}\n" * 200)
        args += ["--local", f"{n}={d}"]
    argv = llb_root.solve_args(build, *args)
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-3000:].decode() for o in outs]
    done: dict[str, int] = {}
    per_run = []
    for _, err in outs:
        evs = [json.loads(line) for line in err.decode().splitlines()]
        term = {e["vertex"]: e["event"] for e in evs if e["event"] in ("done", "cached", "error")}
        per_run.append(term)
        for e in evs:
            if e["event"] == "done":
                done[e["vertex"]] = done.get(e["vertex"], 0) + 1
    assert per_run[0].keys() == per_run[1].keys() and len(per_run[0]) == 2 * len(names) + 2
    assert set(done.values()) == {1}
    assert set(done) == set(per_run[0])  # every vertex ran, exactly once across both
    records = llb_root("du").text
    assert f"in {len(per_run[0])} records" in records


FAILING = '''
import llb

def build():
    good = llb.scratch().file(llb.mkdir("/ok").mkfile("/ok/f", b"fine"))
    bad = llb.scratch().file(llb.mkfile("/missing/dir/f", b"x"))
    after = bad.file(llb.mkfile("/after", b"y"))
    return llb.merge([good, after])
'''


def test_failing_vertex_exits_1_with_its_name_and_caches_nothing_for_it(llb_root: LLB,
                                                                         tmp_path: Path):
    build = write(tmp_path / "build.py", FAILING)
    r = llb_root.solve(build)
    assert r.code == 1
    errors = [e for e in r.events if e["event"] == "error"]
    failed = [e for e in errors if e["error"] != "cancelled"]
    assert [e["name"] for e in failed] == ["mkfile /missing/dir/f"]
    assert set(r.terminal().values()) <= {"done", "cached", "error"} and len(r.terminal()) == 5
    plain = llb_root.solve(build, progress="plain")
    assert plain.code == 1
    last = plain.stderr.strip().splitlines()
    assert any(line.startswith("error: ") and "mkfile /missing/dir/f" in line for line in last)
    assert "Traceback" not in plain.stderr
    du = llb_root("du", "--verbose").text
    assert "mkfile /missing/dir/f" not in du and "mkfile /after" not in du
    assert "merge" not in du


BAD_COPY = '''
import llb

def build():
    return llb.scratch().file(llb.copy(llb.local("ctx"), "/nope.txt", "/x"))
'''


def test_bad_input_exits_2_with_one_line_and_caches_nothing(llb_root: LLB, tmp_path: Path):
    build = write(tmp_path / "build.py", BAD_COPY)
    ctx = tmp_path / "ctx"
    write(ctx / "a.txt", "a")
    r = llb_root.solve(build)  # no --local mapping
    assert r.code == 2 and "no --local mapping for local source 'ctx'" in r.stderr
    r = llb_root.solve(build, "--local", f"ctx={ctx}", progress="plain")
    assert r.code == 2 and r.stderr.strip().splitlines()[-1].startswith("error: copy source /nope.txt")
    assert "Traceback" not in r.stderr
    garbage = write(tmp_path / "graph.llb", "not msgpack at all")
    r = llb_root.solve(garbage)
    assert r.code == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "in 0 records" in llb_root("du").text


def test_bad_output_spec_exits_2_before_anything_runs(tmp_path: Path):
    build = write(tmp_path / "build.py", "import llb\ndef build():\n    return llb.scratch()\n")
    afile = write(tmp_path / "afile", "x")
    root = tmp_path / "root"
    for spec, msg in [
        ("type=bogus,dest=x", "unknown output type 'bogus'"),
        ("type=local", "needs dest="),
        ("dest=x", "missing type="),
        (f"type=local,dest={afile}", "not a directory"),
        (f"type=local,dest={afile}/sub", "cannot write there"),
        (f"type=tar,dest={tmp_path}/no/such/dir/x.tar", "does not exist"),
        (f"type=tar,dest={tmp_path}", "is a directory"),
        ("type=local,dest=x,bogus=1", "unknown option"),
    ]:
        r = run([LLB_PATH, "solve", str(build), "--root", str(root), "--output", spec])
        assert r.code == 2, (spec, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and msg in r.stderr, (spec, r.stderr)
        assert not root.exists()


def test_solve_reads_a_serialised_definition_from_stdin(llb_root: LLB, tmp_path: Path):
    build = write(tmp_path / "build.py", MERGE3)
    args = _locals(tmp_path, "a", "b", "c")
    graph = tmp_path / "graph.llb"
    m = run([LLB_PATH, "marshal", str(build), "-o", str(graph)])
    assert m.code == 0, m.stderr
    assert llb_root.solve(build, *args).code == 0
    r = llb_root.solve("-", *args, input=graph.read_bytes())
    assert r.code == 0, r.stderr
    assert set(r.terminal().values()) == {"cached"}


def test_an_image_on_a_registry_that_does_not_answer_is_one_line(llb_root: LLB, tmp_path: Path):
    build = write(tmp_path / "build.py", "import llb\ndef build():\n"
                  "    return llb.image('127.0.0.1:9/busybox:1.36').file(llb.mkfile('/x', b''))\n")
    r = llb_root.solve(build, progress="plain")
    assert r.code == 1, r.stderr  # not bad input: the registry cannot be reached
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "build() failed" in last
    assert "cannot reach registry 127.0.0.1:9" in last
    assert llb_root("du").text.startswith("Total:\t0B")  # nothing solved, nothing kept


def test_copying_a_path_the_local_filter_leaves_out_is_bad_input(llb_root: LLB, tmp_path: Path):
    build = write(tmp_path / "build.py", "import llb\ndef build():\n"
                  "    ctx = llb.local('ctx', exclude=['secret.txt'])\n"
                  "    return llb.scratch().file(llb.copy(ctx, '/secret.txt', '/x'))\n")
    ctx = tmp_path / "ctx"
    write(ctx / "secret.txt", "s")
    r = llb_root.solve(build, "--local", f"ctx={ctx}", progress="plain")
    assert r.code == 2 and r.stderr.strip() == "error: copy source /secret.txt not found"
    assert "in 0 records" in llb_root("du").text  # refused before the local was synced
