"""File locks in the root: one per cache key (so concurrent solves build a vertex once) and
the prune lock (prunes take turns; solves never wait for one)."""

from __future__ import annotations

import fcntl
import os
import threading

from llb.fsutil.locks import lock_file, try_lock, unlock_file


class KeyLock:
    """An exclusive flock on `<root>/solver/locks/<key hex>`, cancellable while waiting."""

    _made: set[str] = set()  # lock directories known to exist (one mkdir per process)

    def __init__(self, root: str | os.PathLike[str], key: str):
        d = os.path.join(os.fspath(root), "solver", "locks")
        self._dir = d
        self.path = os.path.join(d, key.split(":", 1)[-1])
        self._fd: int | None = None

    def acquire(self, cancelled: threading.Event | None = None) -> bool:
        """Wait for the lock; False if `cancelled` was set first."""
        if self._dir not in KeyLock._made:
            os.makedirs(self._dir, exist_ok=True)
            KeyLock._made.add(self._dir)
        self._fd = lock_file(self.path, cancelled=cancelled)
        return self._fd is not None

    def release(self) -> None:
        """Unlink the lock file, then unlock: waiters notice the file is gone and retry on a
        fresh one, so lock files never pile up."""
        if self._fd is not None:
            unlock_file(self.path, self._fd)
            self._fd = None


def clean_key_locks(root: str | os.PathLike[str]) -> int:
    """Remove lock files nobody holds (prune); returns how many were removed."""
    base = os.path.join(root, "solver", "locks")
    n = 0
    if not os.path.isdir(base):
        return 0
    for name in os.listdir(base):
        p = os.path.join(base, name)
        fd = try_lock(p)
        if fd is not None:
            unlock_file(p, fd)
            n += 1
    return n


class PruneLock:
    """`<root>/solver/prune.lock`: prunes take it exclusively, so they take turns. Solves
    do not take it (a prune skips what they hold: llb.solver.gc)."""

    def __init__(self, root: str | os.PathLike[str]):
        self.path = os.path.join(root, "solver", "prune.lock")
        self._fd: int | None = None

    def acquire(self, exclusive: bool) -> None:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)

    def release(self) -> None:
        fd, self._fd = self._fd, None  # never closed twice, whatever interrupts this
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> "PruneLock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
