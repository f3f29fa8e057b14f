"""Progress renderers: plain lines, JSON lines and the live terminal view."""

from __future__ import annotations

import io
import json

from llb.cli.progress import JsonRenderer, PlainRenderer, TtyRenderer, make_renderer

V1, V2, V3 = ("sha256:" + c * 64 for c in "123")


def _feed(r, t0=1000.0):
    r.begin(3)
    r.event({"event": "cached", "vertex": V1, "name": "scratch", "time": t0, "index": 1})
    r.event({"event": "start", "vertex": V2, "name": "mkfile /a", "time": t0, "index": 2})
    r.event({"event": "log", "vertex": V2, "name": "mkfile /a", "time": t0 + 0.5, "index": 2,
             "stream": "stdout", "data": "hello\nworld\n"})
    r.event({"event": "done", "vertex": V2, "name": "mkfile /a", "time": t0 + 1, "index": 2,
             "duration": 1.25, "explain": "no earlier build of this op"})
    r.event({"event": "error", "vertex": V3, "name": "merge (2 inputs)", "time": t0 + 1,
             "index": 3, "error": "cancelled"})
    r.end()


def test_plain_renderer_prints_buildkit_style_lines():
    out = io.StringIO()
    _feed(PlainRenderer(out))
    assert out.getvalue().splitlines() == [
        "#1 [1/3] scratch", "#1 CACHED", "",
        "#2 [2/3] mkfile /a",
        "#2 0.500 hello", "#2 0.500 world",
        "#2 MISS no earlier build of this op",
        "#2 DONE 1.2s", "",
        "#3 [3/3] merge (2 inputs)", "#3 ERROR: cancelled", "",
    ]


def test_json_renderer_writes_one_event_per_line_without_internal_fields():
    out = io.StringIO()
    _feed(JsonRenderer(out))
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["event"] for e in events] == ["cached", "start", "log", "done", "error"]
    assert all("index" not in e for e in events)
    assert events[2]["stream"] == "stdout" and events[2]["data"] == "hello\nworld\n"
    assert events[3]["duration"] == 1.25 and events[4]["error"] == "cancelled"


def test_tty_renderer_draws_header_and_cached_lines():
    out = io.StringIO()
    _feed(TtyRenderer(out))
    text = out.getvalue()
    final = text.rsplit("\x1b[J", 1)[-1] if "\x1b[J" in text else text
    lines = [ln.rstrip() for ln in final.splitlines() if ln.strip()]
    assert any(ln.startswith(" => CACHED [1/3] scratch") for ln in lines)
    assert any(ln.startswith(" => [2/3] mkfile /a") and ln.endswith("1.0s") for ln in lines)
    assert any(ln.startswith(" => ERROR [3/3] merge (2 inputs): cancelled") for ln in lines)
    assert lines[0].startswith("[+] Building ") and lines[0].endswith("(3/3) FINISHED")
    assert len(lines) == 4


def test_auto_picks_plain_when_not_a_terminal():
    assert isinstance(make_renderer("auto", io.StringIO()), PlainRenderer)
    assert isinstance(make_renderer("json", io.StringIO()), JsonRenderer)
    assert isinstance(make_renderer("tty", io.StringIO()), TtyRenderer)
