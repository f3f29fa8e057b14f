"""OpContext: what the solver hands every op handler."""

from __future__ import annotations

import os
import threading

from llb.snapshot import Store

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Callable, Mapping
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


class OpContext:
    """Everything an op handler may use while running one vertex.

    `log(stream, data)` emits a progress log event ("stdout" | "stderr"), up to
    log_max_size() bytes per stream, then says the output was clipped (as BuildKit does);
    handlers must check `cancelled` at safe points and stop (discarding what they
    prepared) once it is set. (A plain class, not a dataclass: @dataclass compiled its
    methods at every `llb` command's start.)"""

    def __init__(self, store: Store, root: str, vertex: str, name: str,
                 local_dirs: dict[str, Path] | None = None,
                 cancelled: threading.Event | None = None,
                 oci_layouts: Mapping[str, Path] | None = None, puller: Puller | None = None,
                 content_key: str | None = None,
                 _log: Callable[[str, str, bytes], None] | None = None,
                 _transfer: Callable[[str, str, int, int, str], None] | None = None,
                 _tail: list[str] | None = None, _logged: dict[str, int] | None = None,
                 _log_limit: int | None = None) -> None:
        self.store = store
        self.root = root
        self.vertex = vertex
        self.name = name
        self.local_dirs = {} if local_dirs is None else local_dirs
        self.cancelled = threading.Event() if cancelled is None else cancelled
        self.oci_layouts = {} if oci_layouts is None else oci_layouts
        self.puller = puller
        # set by a source keyed by its content (llb.local): the checksum of what its
        # snapshot holds, which its cache record is keyed by (the content may have changed
        # since the key it was looked up under was taken)
        self.content_key = content_key
        self._log = _log
        self._transfer = _transfer
        self._tail = [] if _tail is None else _tail
        self._logged = {} if _logged is None else _logged  # bytes per stream so far
        self._log_limit = log_max_size() if _log_limit is None else _log_limit

    def __repr__(self) -> str:
        return f"OpContext(vertex={self.vertex!r}, name={self.name!r}, root={self.root!r})"

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
