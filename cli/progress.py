"""Progress renderers: a live BuildKit-style terminal view, plain lines, or JSON lines.

Each implements the solver's ProgressSink (begin(total), event(ev), end()) and writes to
stderr, so a tar on stdout stays clean."""

from __future__ import annotations

import os
import sys
import threading
import time

from llb.solver.progress import ProgressSink

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from typing import IO

PLAIN_PROGRESS_INTERVAL = 1.0  # plain view: at most one line per blob and second
LIVE_INTERVAL = 0.1  # plain and json views: byte progress written at most this often


def transfer_text(ev: dict) -> str:
    """`pull sha256:0123456789ab 1.2MB / 3.4MB` (or `... 3.4MB done`) for a progress event."""
    blob = str(ev.get("id", ""))
    kind, colon, rest = blob.partition(":")
    short = f"{kind}:{rest[:12]}" if colon else blob[:24]
    current, total = int(ev.get("current", 0)), int(ev.get("total", 0))
    head = f"{ev.get('action', 'transfer')} {short}"
    from llb.cli.sizes import human_size  # (byte transfers only: image pulls and pushes)

    if total < 0:  # size not known (yet)
        return f"{head} {human_size(current)}"
    if current >= total:
        return f"{head} {human_size(total)} done"
    return f"{head} {human_size(current)} / {human_size(total)}"


class Deferred:
    """A sink passing everything to `sink` but end(): the CLI ends the view itself once the
    work after the solve (an export, a push) has reported too."""

    def __init__(self, sink: ProgressSink):
        self.sink = sink

    def begin(self, total: int) -> None:
        self.sink.begin(total)

    def event(self, ev: dict) -> None:
        self.sink.event(ev)

    def end(self) -> None:
        pass


def make_renderer(mode: str, stream: IO[str] | None = None) -> ProgressSink:
    """The renderer for `--progress MODE` ("auto": tty on a terminal, plain otherwise)."""
    stream = stream or sys.stderr
    if mode == "auto":
        mode = "tty" if _isatty(stream) else "plain"
    if mode == "json":
        return JsonRenderer(stream)
    if mode == "tty":
        return TtyRenderer(stream)
    return PlainRenderer(stream)


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty() and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):
        return False


class _LineRenderer:
    """Writes whole lines, batching runs of cached events (a cached 10,000-vertex solve
    must not cost 10,000 writes) and flushing on every other event; byte progress is
    flushed at most every LIVE_INTERVAL seconds, so a long pull shows as it goes."""

    _batch = 512

    def __init__(self, stream: IO[str]):
        self.stream = stream
        self.total = 0
        self._buf: list[str] = []
        self._flushed_at = 0.0

    def begin(self, total: int) -> None:
        self.total = total

    def _emit(self, ev: dict) -> None:
        kind = ev["event"]
        if kind not in ("cached", "progress") or len(self._buf) >= self._batch or (
                kind == "progress" and time.monotonic() - self._flushed_at >= LIVE_INTERVAL):
            self._flush()

    def _flush(self) -> None:
        if self._buf:
            self.stream.write("\n".join(self._buf) + "\n")
            self._buf.clear()
            self.stream.flush()
            self._flushed_at = time.monotonic()

    def end(self) -> None:
        self._flush()


class JsonRenderer(_LineRenderer):
    """One JSON object per line: event, vertex, name, time (+ duration, stream/data, error)."""

    def event(self, ev: dict) -> None:
        import json  # here, not at start-up: only this renderer needs it

        out = {k: v for k, v in ev.items() if k != "index"}
        self._buf.append(json.dumps(out, separators=(",", ":")))
        self._emit(ev)


class PlainRenderer(_LineRenderer):
    """BuildKit's plain form: `#n [n/m] name`, then `#n CACHED`, log lines, `#n DONE 0.1s`."""

    _batch = 1024

    def __init__(self, stream: IO[str]):
        super().__init__(stream)
        self._started: dict[str, float] = {}
        self._shown: dict[tuple[str, str], float] = {}  # (vertex, blob) -> last line's time

    def event(self, ev: dict) -> None:
        n, kind, name = ev["index"], ev["event"], ev["name"]
        # work after the graph (an export) has no [n/m], as in BuildKit
        head = f"#{n} [{n}/{self.total}] {name}" if n <= self.total else f"#{n} {name}"
        b = self._buf
        if kind == "progress":
            key = (ev["vertex"], str(ev.get("id", "")))
            now = time.monotonic()
            final = 0 <= ev.get("total", 0) <= ev.get("current", 0)
            last = self._shown.get(key)
            if final or last is None or now - last >= PLAIN_PROGRESS_INTERVAL:
                self._shown[key] = now
                b.append(f"#{n} {transfer_text(ev)}")
                if final:
                    self._flush()
        elif kind == "start":
            self._started[ev["vertex"]] = ev["time"]
            b.append(head)
        elif kind == "cached":
            b.append(head)
            b.append(f"#{n} CACHED\n")
        elif kind == "log":
            t = ev["time"] - self._started.get(ev["vertex"], ev["time"])
            for line in ev["data"].splitlines():
                b.append(f"#{n} {t:.3f} {line}")
        elif kind == "done":
            if "explain" in ev:
                b.append(f"#{n} MISS {ev['explain']}")
            b.append(f"#{n} DONE {ev.get('duration', 0):.1f}s\n")
        elif kind == "error":
            if ev["vertex"] not in self._started:
                b.append(head)
            b.append(f"#{n} ERROR: {ev.get('error', '')}\n")
        self._emit(ev)


class _Line:
    __slots__ = ("n", "name", "state", "start", "end", "logs", "blobs")

    def __init__(self, n: int, name: str, start: float):
        self.n, self.name, self.state, self.start, self.end = n, name, "running", start, None
        self.logs: list[str] = []
        self.blobs: dict[str, str] = {}  # blob -> its transfer line, while it moves


class TtyRenderer:
    """A live view: `[+] Building 1.2s (5/7)` over ` => CACHED [n/m] name` lines, redrawn
    ten times a second; when the terminal is full, finished lines scroll up and stay."""

    _LOG_LINES = 6

    def __init__(self, stream: IO[str]):
        self.stream = stream
        self.total = 0
        self.t0 = time.time()
        self._lines: dict[str, _Line] = {}
        self._order: list[_Line] = []
        self._flushed = 0  # lines of _order already printed for good
        self._drawn = 0  # terminal rows of the live region
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def begin(self, total: int) -> None:
        self.total = total
        self.t0 = time.time()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="llb-progress")
        self._thread.start()

    def event(self, ev: dict) -> None:
        with self._lock:
            v = ev["vertex"]
            line = self._lines.get(v)
            if line is None:
                line = self._lines[v] = _Line(ev["index"], ev["name"], ev["time"])
                self._order.append(line)
            kind = ev["event"]
            if kind == "progress":
                blob = str(ev.get("id", ""))
                if 0 <= ev.get("total", 0) <= ev.get("current", 0):
                    line.blobs.pop(blob, None)
                    line.logs.append(transfer_text(ev))
                    del line.logs[:-self._LOG_LINES]
                else:
                    line.blobs[blob] = transfer_text(ev)
            elif kind == "log":
                line.logs.extend(ev["data"].splitlines())
                del line.logs[:-self._LOG_LINES]
            elif kind in ("cached", "done", "error"):
                line.state = kind
                line.end = ev["time"]
                if kind == "error":
                    line.name = f"{line.name}: {ev.get('error', '')}"

    def end(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            self._draw(final=True)

    def _loop(self) -> None:
        while not self._stop.wait(0.1):
            with self._lock:
                self._draw(final=False)

    def _draw(self, final: bool) -> None:
        """Redraw the live region: the header, then one line per vertex (running ones with
        their last log lines). Finished lines that no longer fit scroll up for good."""
        import shutil  # the tty view only (shutil loads the compression modules)

        size = shutil.get_terminal_size((100, 24))
        width, rows = size.columns, max(size.lines, 4)
        out = []
        if self._drawn:
            out.append(f"\x1b[{self._drawn}F\x1b[J")  # back to the region's top, clear it
        order = self._order
        if not final:
            while len(order) - self._flushed > rows - 2 and order[self._flushed].state != "running":
                out.append(self._fmt(order[self._flushed], width) + "\n")
                self._flushed += 1
        finished = sum(1 for ln in order if ln.state != "running" and ln.n <= self.total)
        elapsed = time.time() - self.t0
        header = f"[+] Building {elapsed:.1f}s ({finished}/{self.total})" + (" FINISHED" if final else "")
        region = [header]
        for ln in order[self._flushed:]:
            region.extend(self._fmt(ln, width, logs=not final).split("\n"))
        if not final:
            region = region[:rows - 1]
        out.append("\n".join(region) + "\n")
        self._drawn = 0 if final else len(region)
        self.stream.write("".join(out))
        self.stream.flush()

    def _fmt(self, ln: _Line, width: int, logs: bool = False) -> str:
        t = (ln.end or time.time()) - ln.start
        tag = {"cached": "CACHED ", "error": "ERROR "}.get(ln.state, "")
        where = f"[{ln.n}/{self.total}] " if ln.n <= self.total else ""
        text = f" => {tag}{where}{ln.name}"
        dur = f"{t:.1f}s" if ln.state != "cached" else "0.0s"
        room = width - len(dur) - 1
        if len(text) > room:
            text = text[:max(room - 1, 10)] + "…"
        s = text.ljust(room) + " " + dur
        if logs and ln.state == "running":
            s += "".join("\n => => # " + x[: width - 10] for x in ln.logs)
            s += "".join("\n => => " + x[: width - 8] for x in list(ln.blobs.values())[:6])
        return s
