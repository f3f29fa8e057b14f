"""Progress events: what the solver reports while it runs (design.md, "Solver").

Each event is a dict with at least "event" ("start" | "cached" | "log" | "done" | "error" |
"progress"), "vertex" (op digest), "name" and "time" (unix seconds); "duration" on done,
"stream" and "data" on log, "error" on error, "explain" on a miss when asked. Every vertex of
a solve gets exactly one of cached, done or error. Sinks also receive "index" (1-based
position of the vertex in the solve) and are told the total first, for `[n/m]` views.

"progress" events report bytes moving for one blob of a vertex (a pull) or of an export (a
push): "id" (the blob's digest), "action" ("pull", "push", "compress", ...), "current" and
"total" (bytes). They are throttled per blob (the first and last always come through).
Work after the graph (exporting an image, pushing it) reports as a Step: a pseudo-vertex
"export" whose index follows the graph's last, with start, progress, log and done or error
events."""

from __future__ import annotations

import threading
import time

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from typing import Any, Callable, Protocol
    Event = dict[str, Any]  # one progress event (see the module docstring for its fields)
else:  # a protocol is a plain base class at run time (nothing checks one then)
    Protocol = object


class ProgressSink(Protocol):
    """Where events go: the CLI's renderers implement this."""

    def begin(self, total: int) -> None: ...
    def event(self, ev: Event) -> None: ...
    def end(self) -> None: ...


PROGRESS_INTERVAL = 0.1  # seconds between two progress events of one blob


class Progress:
    """Emits events to a sink, thread-safely; no sink means events are dropped."""

    def __init__(self, sink: ProgressSink | None = None):
        self.sink = sink
        self.total = 0
        self._lock = threading.Lock()
        self._last: dict[tuple[str, str], float] = {}
        self._finished: set[tuple[str, str]] = set()

    def begin(self, total: int) -> None:
        self.total = total
        if self.sink is not None:
            self.sink.begin(total)

    def end(self) -> None:
        if self.sink is not None:
            self.sink.end()

    def emit(self, event: str, vertex: str, name: str, index: int, **extra: Any) -> None:
        """Send one event (with `extra` fields) to the sink."""
        if self.sink is None:
            return
        ev = {"event": event, "vertex": vertex, "name": name, "time": time.time(), "index": index}
        ev.update(extra)
        with self._lock:
            self.sink.event(ev)

    def transfer(self, vertex: str, name: str, index: int, blob: str, current: int,
                 total: int, action: str) -> None:
        """A "progress" event for `blob` of `vertex`, unless one for it went out less than
        PROGRESS_INTERVAL ago (the first and the last, current == total, always go, the last
        once; a total below 0 means unknown)."""
        if self.sink is None:
            return
        now = time.monotonic()
        key = (vertex, blob)
        final = 0 <= total <= current
        with self._lock:
            if final:
                if key in self._finished:  # told already
                    return
                self._finished.add(key)
                self._last.pop(key, None)
            else:
                self._finished.discard(key)  # (a transfer started over)
                last = self._last.get(key)
                if last is not None and now - last < PROGRESS_INTERVAL:
                    return
                self._last[key] = now
        self.emit("progress", vertex, name, index, id=blob, action=action, current=current,
                  total=total)


EXPORT_VERTEX = "export"


class Step:
    """Progress of work after the graph (an export, a push), reported as one pseudo-vertex
    (`EXPORT_VERTEX`) numbered after the graph's vertices: start, then progress and log
    events, then done or error."""

    def __init__(self, progress: Progress | None, name: str):
        self.progress = progress
        self.name = name
        self.index = (progress.total if progress is not None else 0) + 1
        self._t0 = time.time()

    def start(self) -> None:
        self._t0 = time.time()
        self._emit("start")

    def blob(self, action: str) -> Callable[[str, int, int], None]:
        """A content-room progress callback `(digest, current, total)` reporting `action`."""
        def report(digest: str, current: int, total: int) -> None:
            if self.progress is not None:
                self.progress.transfer(EXPORT_VERTEX, self.name, self.index, digest, current,
                                       total, action)
        return report

    def log(self, text: str) -> None:
        """A line of what the step did (shown under it)."""
        self._emit("log", stream="stderr", data=text if text.endswith("\n") else text + "\n")

    def done(self) -> None:
        self._emit("done", duration=time.time() - self._t0)

    def error(self, message: str) -> None:
        self._emit("error", error=message)

    def _emit(self, event: str, **extra: Any) -> None:
        if self.progress is not None:
            self.progress.emit(event, EXPORT_VERTEX, self.name, self.index, **extra)


class Recorder:
    """A sink that keeps every event (tests and library users)."""

    def __init__(self) -> None:
        self.total = 0
        self.events: list[Event] = []

    def begin(self, total: int) -> None:
        self.total = total

    def event(self, ev: Event) -> None:
        self.events.append(ev)

    def end(self) -> None:
        pass

    def count(self, event: str) -> int:
        return sum(1 for e in self.events if e["event"] == event)
