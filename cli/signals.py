"""SIGINT, SIGTERM and SIGHUP stop a command the same way: the first one raises `Interrupted`
in the main thread (a KeyboardInterrupt, so every cleanup that handles Ctrl-C handles it:
the solver cancels its vertices, the executor kills their containers, the store discards
what was prepared), later ones are only noted so that cleanup is not cut short. The CLI then
prints one line and exits with 128 + the signal's number, as a shell reports a process a
signal ended. A signal the parent ignored (nohup's SIGHUP) stays ignored."""

from __future__ import annotations

from types import FrameType

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (mypy knows the name)
if TYPE_CHECKING:
    import signal as _signal
else:  # signal's C half: signal.py makes three IntEnums at import (~3M instructions, enum's
    import _signal  # conversion of every SIG* name); names are read from it when needed

SIGINT, SIGTERM, SIGHUP = _signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP
SIGNALS = (SIGINT, SIGTERM, SIGHUP)
_NAMES: dict[int, str] = {SIGINT: "SIGINT", SIGTERM: "SIGTERM", SIGHUP: "SIGHUP"}


def _name(signum: int) -> str:
    # no import here: the handler runs between any two bytecodes, an import's among them, and
    # `import signal` while enum was half made once turned a SIGHUP into a NameError traceback
    return _NAMES.get(signum, f"signal {signum}")


class Interrupted(KeyboardInterrupt):
    """The command was stopped by a signal; `signum` says which."""

    def __init__(self, signum: int):
        super().__init__(_name(signum))
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """128 + the signal number (130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP)."""
        return 128 + self.signum

    @property
    def message(self) -> str:
        return f"interrupted by {_name(self.signum)}"


_received: list[int] = []


_over = False  # the command has ended (settle): a signal now changes nothing


def _handler(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)
    if len(_received) == 1 and not _over:
        raise Interrupted(signum)
    # a second signal while the first one's cleanup runs: cleanup goes on


def settle() -> None:
    """The command is over and its status decided: a signal from now on is only noted (it
    would otherwise come out of the exit's flushing as a traceback)."""
    global _over
    _over = True


def install() -> None:
    """Handle SIGINT, SIGTERM and SIGHUP in this process (call from the main thread)."""
    for sig in SIGNALS:
        if _signal.getsignal(sig) != _signal.SIG_IGN:
            _signal.signal(sig, _handler)
