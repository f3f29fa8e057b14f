"""OpContext: what the solver hands every op handler."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from llb.snapshot import Store


@dataclass
class OpContext:
    """Everything an op handler may use while running one vertex.

    `log(stream, data)` emits a progress log event ("stdout" | "stderr"); handlers must check
    `cancelled` at safe points and stop (discarding what they prepared) once it is set."""

    store: Store
    root: Path
    vertex: str
    name: str
    local_dirs: dict[str, Path] = field(default_factory=dict)
    cancelled: threading.Event = field(default_factory=threading.Event)
    # set by a source keyed by its content (llb.local): the checksum of what its snapshot
    # holds, which its cache record is keyed by (the content may have changed since the
    # key it was looked up under was taken)
    content_key: str | None = None
    _log: Callable[[str, str, bytes], None] | None = None
    _transfer: Callable[[str, str, int, int, str], None] | None = None
    _tail: list[str] = field(default_factory=list)

    def transfer(self, blob: str, current: int, total: int, action: str = "pull") -> None:
        """Report bytes of `blob` moving for this vertex (a "progress" event, throttled):
        `current` of `total` bytes, `action` what is happening ("pull", "unpack", ...).
        Fits the content room's progress callbacks: `lambda d, c, t: ctx.transfer(d, c, t)`."""
        if self._transfer is not None:
            self._transfer(self.vertex, blob, current, total, action)

    def log(self, stream: str, data: bytes) -> None:
        """Emit `data` from `stream` as a progress log event and keep the tail for errors."""
        if not data:
            return
        text = data.decode("utf-8", "replace")
        self._tail.extend(text.splitlines())
        del self._tail[:-20]
        if self._log is not None:
            self._log(self.vertex, stream, data)

    def log_tail(self, lines: int = 10) -> list[str]:
        """The last `lines` lines this vertex logged (for a failure message)."""
        return self._tail[-lines:]
