"""File locks in the root: one per cache key (so concurrent solves build a vertex once) and
the prune lock (prunes take turns; solves never wait for one)."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path


class KeyLock:
    """An exclusive flock on `<root>/solver/locks/<key hex>`, cancellable while waiting."""

    _made: set[str] = set()  # lock directories known to exist (one mkdir per process)

    def __init__(self, root: Path, key: str):
        d = os.path.join(os.fspath(root), "solver", "locks")
        self._dir = d
        self.path = Path(d, key.split(":", 1)[-1])
        self._fd: int | None = None

    def acquire(self, cancelled: threading.Event | None = None) -> bool:
        """Wait for the lock; False if `cancelled` was set first."""
        if self._dir not in KeyLock._made:
            os.makedirs(self._dir, exist_ok=True)
            KeyLock._made.add(self._dir)
        path = os.fspath(self.path)
        delay = 0.002
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if cancelled is not None and cancelled.is_set():
                        os.close(fd)
                        return False
                    time.sleep(delay)
                    delay = min(delay * 2, 0.05)
            # the holder before us unlinked the file on release: lock the live one
            try:
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self._fd = fd
                return True
            os.close(fd)

    def release(self) -> None:
        """Unlink the lock file, then unlock: waiters notice the file is gone and retry on a
        fresh one, so lock files never pile up."""
        if self._fd is not None:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def clean_key_locks(root: Path) -> int:
    """Remove lock files nobody holds (prune); returns how many were removed."""
    base = Path(root) / "solver" / "locks"
    n = 0
    if not base.is_dir():
        return 0
    for p in base.iterdir():
        try:
            fd = os.open(p, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        try:
            p.unlink()
            n += 1
        finally:
            os.close(fd)
    return n


class PruneLock:
    """`<root>/solver/prune.lock`: prunes take it exclusively, so they take turns. Solves
    do not take it (a prune skips what they hold: llb.solver.gc)."""

    def __init__(self, root: Path):
        self.path = Path(root) / "solver" / "prune.lock"
        self._fd: int | None = None

    def acquire(self, exclusive: bool) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "PruneLock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
