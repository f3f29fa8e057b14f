"""File locks (flock), the one implementation every room's locks build on: the snapshot
store's root lock and sessions, the content store's lock and sessions, the solver's per-key
and prune locks, and the executor's container owner files.

flock belongs to an open file description, so a lock holds between processes and between
threads of one process that open the file separately. Lock files their holder unlinks on
release (`lock_file` + `unlock_file`) never pile up: a waiter that wins a lock on an
unlinked inode notices and locks the live file instead."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

_FIRST_WAIT = 0.002  # seconds between tries, doubling up to _LAST_WAIT
_LAST_WAIT = 0.05


def lock_file(path: str | os.PathLike[str], *, wait: bool = True, create: bool = True,
              cancelled: threading.Event | None = None, mode: int = 0o644) -> int | None:
    """An open descriptor holding an exclusive flock on `path`, or None when `wait` is False
    and another holder has it, when it does not exist and `create` is False, or when
    `cancelled` is set while waiting."""
    delay = _FIRST_WAIT
    flags = os.O_RDWR | os.O_CLOEXEC | (os.O_CREAT if create else 0)
    while True:
        try:
            fd = os.open(path, flags, mode)
        except FileNotFoundError:
            return None
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not wait or (cancelled is not None and cancelled.is_set()):
                    os.close(fd)
                    return None
                time.sleep(delay)
                delay = min(delay * 2, _LAST_WAIT)
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # the holder before us unlinked it on release: lock the live file
        if not create:
            return None


def try_lock(path: str | os.PathLike[str]) -> int | None:
    """The exclusive lock of an existing file nobody holds (e.g. a dead process's claim), or
    None while someone holds it or when it is gone."""
    return lock_file(path, wait=False, create=False)


def unlock_file(path: str | os.PathLike[str], fd: int) -> None:
    """Release a lock taken with lock_file: unlink the file, then unlock, so waiters retry
    on a fresh file and lock files never pile up."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    os.close(fd)


class _Holds:
    """Counted holds of one descriptor's flock, safe between threads: the first hold takes
    it, the last releases it."""

    def __init__(self, fd: int, how: int):
        self.fd, self.how, self.count = fd, how, 0
        self._count_lock = threading.Lock()

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._count_lock:
            if self.count == 0:
                fcntl.flock(self.fd, self.how)
            self.count += 1
        try:
            yield
        finally:
            with self._count_lock:
                self.count -= 1
                if self.count == 0:
                    fcntl.flock(self.fd, fcntl.LOCK_UN)


class Mutex:
    """An exclusive lock on a file, re-entrant within the process (a thread lock inside,
    flock across processes)."""

    def __init__(self, path: str | os.PathLike[str], mode: int = 0o600):
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, mode)
        self._thread = threading.RLock()
        self._holds = _Holds(self._fd, fcntl.LOCK_EX)

    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold the lock for the block (nested holds in one thread are free)."""
        with self._thread, self._holds.held():
            yield

    def close(self) -> None:
        """Release the descriptor (no holder may be active)."""
        os.close(self._fd)


class SharedLock:
    """A lock on a file with shared holders (threads and processes running together) and
    exclusive ones (alone). Shared holders of one process share one counted descriptor; an
    exclusive holder uses its own."""

    def __init__(self, path: str | os.PathLike[str]):
        self._path = path
        self._shared_fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._holds = _Holds(self._shared_fd, fcntl.LOCK_SH)
        self._exclusive = threading.Lock()  # one exclusive holder per process at a time

    @contextmanager
    def shared(self) -> Iterator[None]:
        """Hold the lock shared for the block."""
        with self._holds.held():
            yield

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the lock alone for the block."""
        with self._exclusive:
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)

    def close(self) -> None:
        """Release the descriptor (no holder may be active)."""
        os.close(self._shared_fd)


class Claim:
    """A live process's claim on a lock file, held until close(): whoever can lock the file
    (try_lock) knows its claimant is dead and may clean up after it."""

    def __init__(self, path: str | os.PathLike[str], mode: int = 0o600):
        self.path = path
        fd = lock_file(path, wait=False, mode=mode)
        if fd is None:  # a fresh random name is never held by anyone else
            raise RuntimeError(f"lock {os.fspath(path)} is held elsewhere")
        self._fd: int | None = fd

    def close(self, *, unlink: bool = True) -> None:
        """Give up the claim (idempotent); unlink=False keeps the file for a reaper."""
        fd, self._fd = self._fd, None  # never closed twice, whatever interrupts this
        if fd is None:
            return
        if unlink:
            unlock_file(self.path, fd)
        else:
            os.close(fd)
