"""Cross-process safety for one root: a global flock serialising every change of the
snapshot directories and DB, and per-process session locks that tell a live process's
temporaries from a dead one's."""

from __future__ import annotations

import fcntl
import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


class RootLock:
    """Exclusive lock on `<root>/lock`: a thread lock inside the process, flock across."""

    def __init__(self, path: Path):
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._thread = threading.RLock()
        self._depth = 0

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._thread:
            if self._depth == 0:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self._fd)


class Session:
    """This process's claim on `<root>/tmp/<sid>/`: held with flock on `<sid>.lock` for the
    store's lifetime, so another process may delete the directory only once we are dead."""

    def __init__(self, tmp: Path, sid: str):
        self.id = sid
        self.dir = tmp / sid
        self.lock_path = tmp / f"{sid}.lock"
        self._fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            self.dir.mkdir(mode=0o700)
        except BaseException:  # e.g. a full disk: no half session left behind
            self.lock_path.unlink(missing_ok=True)
            os.close(self._fd)
            raise

    def close(self) -> None:
        os.close(self._fd)


def try_claim_dead(lock_path: Path) -> int | None:
    """Lock a session lock file whose owner is gone; returns the fd (close it after
    cleaning up) or None while the owner lives."""
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd
