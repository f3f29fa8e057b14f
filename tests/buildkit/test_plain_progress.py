"""buildctl's plain progress (BuildKit v0.11.6 has no JSON mode) read back into llb's events,
on lines recorded from a real buildctl: headers printed again, "#0" early log lines, the
failure summary's repeated logs, the exporter's own vertices."""

from __future__ import annotations

from llb.remote.plain import PlainProgress, Vertex
from llb.solver.progress import Progress, Recorder

RECORDED = """#1 [llb 1] local://busybox
#1 DONE 0.0s

#1 [llb 1] local://busybox
#1 transferring busybox: 1.98MB 0.1s done
#1 DONE 0.1s

#2 [llb 2] busybox files
#2 CACHED

#3 [llb 3] boom
#0 0.084 one
#3 0.094 two
#3 ERROR: process "sh -c exit 3" did not complete successfully: exit code: 3
------
 > [llb 3] boom:
#0 0.084 one
#3 0.094 two
------
error: failed to solve: process "sh -c exit 3" did not complete successfully: exit code: 3"""

EXPORTED = """#1 [llb 1] files
#1 DONE 0.0s

#2 [llb 2] merge
#2 merging 0.0s done
#2 DONE 0.2s

#3 exporting to client directory
#3 copying files 152B done
#3 DONE 0.0s"""


def _run(text: str, n: int, ok: bool, aliases: int = 0) -> tuple[Recorder, PlainProgress]:
    vertices = [Vertex(f"v{i}", f"name {i}", i) for i in range(1, n + 1 + aliases)]
    marks = {i: [vertices[i - 1]] for i in range(1, n + 1)}
    for j in range(aliases):  # llb vertices BuildKit has no op for (a merge of one input)
        marks[n].append(vertices[n + j])
    rec = Recorder()
    parser = PlainProgress(vertices, marks, Progress(rec))
    for line in text.splitlines():
        parser.feed(line)
    parser.finish(ok)
    return rec, parser


def _terminal(rec: Recorder) -> dict[str, str]:
    out: dict[str, str] = {}
    for e in rec.events:
        if e["event"] in ("cached", "done", "error"):
            assert e["vertex"] not in out
            out[e["vertex"]] = e["event"]
    return out


def test_a_failed_build():
    rec, parser = _run(RECORDED, 3, ok=False)
    assert _terminal(rec) == {"v1": "done", "v2": "cached", "v3": "error"}
    assert [e["data"] for e in rec.events if e["event"] == "log"] == ["one\n", "two\n"]
    assert [e["vertex"] for e in rec.events if e["event"] == "start"] == ["v1", "v3"]
    assert parser.failed[0].digest == "v3" and parser.failed[0].log == ["one", "two"]
    assert parser.error_line.startswith("failed to solve: process")


def test_exporter_vertices_are_not_llbs_and_aliases_follow_their_op():
    rec, parser = _run(EXPORTED, 2, ok=True, aliases=1)
    assert _terminal(rec) == {"v1": "done", "v2": "done", "v3": "done"}
    assert [e["duration"] for e in rec.events if e["event"] == "done"] == [0.0, 0.2, 0.2]


def test_unreported_vertices_are_cached_on_success_and_cancelled_on_failure():
    rec, parser = _run("", 2, ok=True)
    assert _terminal(rec) == {"v1": "cached", "v2": "cached"} and not parser.reported
    rec, _ = _run("", 2, ok=False)
    assert _terminal(rec) == {"v1": "error", "v2": "error"}
    assert not [e for e in rec.events if e["event"] == "start"]
