"""SIGINT, SIGTERM and SIGHUP stop a command the same way: the first one raises `Interrupted`
in the main thread (a KeyboardInterrupt, so every cleanup that handles Ctrl-C handles it:
the solver cancels its vertices, the executor kills their containers, the store discards
what was prepared), later ones are only noted so that cleanup is not cut short. The CLI then
prints one line and exits with 128 + the signal's number, as a shell reports a process a
signal ended. A signal the parent ignored (nohup's SIGHUP) stays ignored."""

from __future__ import annotations

import signal
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """The command was stopped by a signal; `signum` says which."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """128 + the signal number (130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP)."""
        return 128 + self.signum

    @property
    def message(self) -> str:
        return f"interrupted by {signal.Signals(self.signum).name}"


_received: list[int] = []


def _handler(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)
    if len(_received) == 1:
        raise Interrupted(signum)
    # a second signal while the first one's cleanup runs: cleanup goes on


def install() -> None:
    """Handle SIGINT, SIGTERM and SIGHUP in this process (call from the main thread)."""
    for sig in SIGNALS:
        if signal.getsignal(sig) != signal.SIG_IGN:
            signal.signal(sig, _handler)
