"""OpContext: what the solver hands every op handler."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping

from llb.snapshot import Store

if TYPE_CHECKING:
    from llb.solver.puller import Puller


LOG_MAX_SIZE = 2 << 20  # bytes of each stream of a step shown in progress, as BuildKit


def log_max_size() -> int:
    """Bytes of each output stream of one step that reach progress events: 2 MiB (BuildKit's
    default); $LLB_STEP_LOG_MAX_SIZE overrides it as BuildKit's BUILDKIT_STEP_LOG_MAX_SIZE
    does (-1: no limit)."""
    env = os.environ.get("LLB_STEP_LOG_MAX_SIZE", "")
    try:
        return int(env) if env else LOG_MAX_SIZE
    except ValueError:
        return LOG_MAX_SIZE


def _size_text(n: int) -> str:
    for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size and n % size == 0:
            return f"{n // size}{unit}"
    return f"{n}B"


@dataclass
class OpContext:
    """Everything an op handler may use while running one vertex.

    `log(stream, data)` emits a progress log event ("stdout" | "stderr"), up to
    log_max_size() bytes per stream, then says the output was clipped (as BuildKit does);
    handlers must check `cancelled` at safe points and stop (discarding what they
    prepared) once it is set."""

    store: Store
    root: Path
    vertex: str
    name: str
    local_dirs: dict[str, Path] = field(default_factory=dict)
    cancelled: threading.Event = field(default_factory=threading.Event)
    oci_layouts: Mapping[str, Path] = field(default_factory=dict)
    puller: Puller | None = None
    # set by a source keyed by its content (llb.local): the checksum of what its snapshot
    # holds, which its cache record is keyed by (the content may have changed since the
    # key it was looked up under was taken)
    content_key: str | None = None
    _log: Callable[[str, str, bytes], None] | None = None
    _transfer: Callable[[str, str, int, int, str], None] | None = None
    _tail: list[str] = field(default_factory=list)
    _logged: dict[str, int] = field(default_factory=dict)  # bytes per stream so far
    _log_limit: int = field(default_factory=log_max_size)

    def transfer(self, blob: str, current: int, total: int, action: str = "pull") -> None:
        """Report bytes of `blob` moving for this vertex (a "progress" event, throttled):
        `current` of `total` bytes, `action` what is happening ("pull", "unpack", ...).
        Fits the content room's progress callbacks: `lambda d, c, t: ctx.transfer(d, c, t)`."""
        if self._transfer is not None:
            self._transfer(self.vertex, blob, current, total, action)

    def log(self, stream: str, data: bytes) -> None:
        """Emit `data` from `stream` as a progress log event and keep the tail for errors
        (the tail follows the whole output, clipped or not)."""
        if not data:
            return
        text = data.decode("utf-8", "replace")
        self._tail.extend(text.splitlines())
        del self._tail[:-20]
        if self._log is None:
            return
        used = self._logged.get(stream, 0)
        self._logged[stream] = used + len(data)
        limit = self._log_limit
        if limit >= 0 and used + len(data) > limit:
            if used > limit:
                return  # clipped already
            data = (data[:limit - used] + b"\n[output clipped, log limit "
                    + _size_text(limit).encode() + b" reached]\n")
        self._log(self.vertex, stream, data)

    def log_tail(self, lines: int = 10) -> list[str]:
        """The last `lines` lines this vertex logged (for a failure message)."""
        return self._tail[-lines:]
