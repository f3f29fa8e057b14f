"""Progress events: what the solver reports while it runs (design.md, "Solver").

Each event is a dict with at least "event" ("start" | "cached" | "log" | "done" | "error"),
"vertex" (op digest), "name" and "time" (unix seconds); "duration" on done, "stream" and
"data" on log, "error" on error, "explain" on a miss when asked. Every vertex of a solve gets
exactly one of cached, done or error. Sinks also receive "index" (1-based position of the
vertex in the solve) and are told the total first, for `[n/m]` views."""

from __future__ import annotations

import threading
import time
from typing import Any, Protocol

Event = dict[str, Any]  # one progress event (see the module docstring for its fields)


class ProgressSink(Protocol):
    """Where events go: the CLI's renderers implement this."""

    def begin(self, total: int) -> None: ...
    def event(self, ev: Event) -> None: ...
    def end(self) -> None: ...


class Progress:
    """Emits events to a sink, thread-safely; no sink means events are dropped."""

    def __init__(self, sink: ProgressSink | None = None):
        self.sink = sink
        self._lock = threading.Lock()

    def begin(self, total: int) -> None:
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
