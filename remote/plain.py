"""buildctl's `--progress plain` stream, turned into llb's progress events.

BuildKit v0.11.6's buildctl has no machine-readable progress mode (rawjson came in v0.12), so
the backend names every BuildKit op `[llb K] <name>` (metadata only: digests are unchanged)
and reads the plain lines back:

    #4 [llb 5] exec sh -c make        a vertex starts (printed again when output resumes)
    #4 0.071 some output              a line of its output (seconds since it started; BuildKit
                                      prints a line that comes early as "#0": the last vertex's)
    #4 DONE 0.5s | #4 CACHED | #4 ERROR: message | #4 CANCELED
    ------ ... ------                 the failure summary (its log lines are repeats)
    error: failed to solve: ...       buildctl's last word

Vertices of other origin (the exporter's) are ignored. Each llb vertex gets exactly one of
cached, done or error, after a start unless it was cached, as the local solver gives.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from llb.solver.progress import Progress

_LINE = re.compile(r"^#(\d+) (.*)$")
_MARK = re.compile(r"^\[llb (\d+)\] ")
_DONE = re.compile(r"^DONE (\d+(?:\.\d+)?)s$")
_LOG = re.compile(r"^(\d+\.\d+) ?(.*)$")
LOG_TAIL = 10


@dataclass
class Vertex:
    """One llb vertex as the backend reports it."""

    digest: str
    name: str
    index: int
    started: bool = False
    terminal: str | None = None
    error: str = ""
    log: list[str] = field(default_factory=list)


class PlainProgress:
    """Feed it buildctl's stderr line by line; it emits llb progress events.

    `marks` maps the K of `[llb K]` to the llb vertices one BuildKit op stands for."""

    def __init__(self, vertices: list[Vertex], marks: dict[int, list[Vertex]], progress: Progress):
        self.vertices = vertices
        self.marks = marks
        self.progress = progress
        self.numbers: dict[int, list[Vertex]] = {}  # buildctl's #N -> llb vertices
        self.headers: dict[int, str] = {}
        self.foreign: set[int] = set()
        self.pending: set[int] = set()  # announced, not yet known to be running or cached
        self.last: int | None = None  # the vertex buildctl printed last
        self.reported = False  # buildctl printed one of llb's vertices
        self.in_summary = False
        self.error_line = ""
        self.failed: list[Vertex] = []

    def feed(self, line: str) -> None:
        """One line of buildctl's stderr (without its newline)."""
        if line.startswith("------"):
            self.in_summary = not self.in_summary
            return
        if self.in_summary or not line:
            return
        if line.startswith("error: "):
            self.error_line = line[len("error: "):]
            return
        m = _LINE.match(line)
        if m is None:
            return
        number, rest = int(m.group(1)), m.group(2)
        if number == 0 and self.last is not None and _LOG.match(rest):
            number = self.last  # BuildKit 0.11 prints early log lines of a vertex as "#0"
        for other in [p for p in self.pending if p != number]:  # buildctl moved on: running
            self.pending.discard(other)
            for v in self.numbers[other]:
                self._start(v)
        if number in self.foreign:
            return
        targets = self.numbers.get(number)
        if targets is None:
            mark = _MARK.match(rest)
            if mark is None or int(mark.group(1)) not in self.marks:
                self.foreign.add(number)
                return
            targets = self.numbers[number] = self.marks[int(mark.group(1))]
            self.headers[number] = rest
            self.last = number
            self.reported = True
            self.pending.add(number)  # started, unless the next line says CACHED
            return
        if rest == "..." or rest == self.headers[number]:
            return
        self.last = number
        if number in self.pending:
            self.pending.discard(number)
            if rest != "CACHED":
                for v in targets:
                    self._start(v)
        self._status(targets, rest)

    def _status(self, targets: list[Vertex], rest: str) -> None:
        if rest == "CACHED":
            for v in targets:
                self._terminal(v, "cached")
            return
        done = _DONE.match(rest)
        if done:
            for v in targets:
                self._terminal(v, "done", duration=float(done.group(1)))
            return
        if rest.startswith("ERROR: ") or rest == "CANCELED":
            message = rest[len("ERROR: "):] if rest.startswith("ERROR: ") else "cancelled"
            for v in targets:
                v.error = message
                if v.terminal is None:
                    self.failed.append(v)
                self._terminal(v, "error", error=message)
            return
        log = _LOG.match(rest)
        if log:
            text = log.group(2)
            for v in targets:
                v.log.append(text)
                del v.log[:-LOG_TAIL]
                if v.terminal is None:
                    self.progress.emit("log", v.digest, v.name, v.index, stream="stdout",
                                       data=text + "\n")
        # anything else is a status line (e.g. "transferring context: 2kB done")

    def _start(self, v: Vertex) -> None:
        if not v.started and v.terminal is None:
            v.started = True
            self.progress.emit("start", v.digest, v.name, v.index)

    def _terminal(self, v: Vertex, event: str, *, start: bool = True, **extra: object) -> None:
        if v.terminal is not None:
            return
        if start and event != "cached":
            self._start(v)
        v.terminal = event
        self.progress.emit(event, v.digest, v.name, v.index, **extra)

    def finish(self, ok: bool) -> None:
        """After buildctl exits: what BuildKit never reported is cached on success (scratch,
        vertices BuildKit shared with another build), cancelled on failure."""
        for v in self.vertices:
            if v.terminal is None:
                if ok:
                    self._terminal(v, "cached")
                else:
                    self._terminal(v, "error", start=False, error="cancelled")
