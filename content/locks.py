"""File locks of the content store, safe across processes and threads of one process:
the store lock (shared while publishing or leasing blobs, exclusive while removing them),
exclusive locks on files their holder may unlink (ingests, sessions), and session claims
that tell a live process's leases from a dead one's."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from contextlib import contextmanager
from typing import Iterator


class StoreLock:
    """`<content>/lock`. Shared holders (threads and processes publishing or leasing) run
    together; an exclusive holder (prune, remove) runs alone. flock belongs to an open file
    description, so shared holders of one process share one counted descriptor and an
    exclusive holder uses its own."""

    def __init__(self, path: str):
        self._path = path
        self._shared_fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._count = 0
        self._mutex = threading.Lock()
        self._exclusive = threading.Lock()  # one exclusive holder per process at a time

    @contextmanager
    def shared(self) -> Iterator[None]:
        """Held while publishing or leasing: no blob disappears meanwhile."""
        with self._mutex:
            if self._count == 0:
                fcntl.flock(self._shared_fd, fcntl.LOCK_SH)
            self._count += 1
        try:
            yield
        finally:
            with self._mutex:
                self._count -= 1
                if self._count == 0:
                    fcntl.flock(self._shared_fd, fcntl.LOCK_UN)

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Held while removing blobs: nobody publishes or leases meanwhile."""
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


def lock_file(path: str, *, wait: bool = True, create: bool = True,
              cancelled: threading.Event | None = None) -> int | None:
    """An open descriptor holding an exclusive flock on `path`, or None when `wait` is False
    and another holder has it, when it does not exist and `create` is False, or when
    `cancelled` is set while waiting. A holder may unlink the file before unlocking: a
    waiter that then wins a lock on the unlinked inode notices and locks the live file."""
    delay = 0.002
    flags = os.O_RDWR | os.O_CLOEXEC | (os.O_CREAT if create else 0)
    while True:
        try:
            fd = os.open(path, flags, 0o644)
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
                delay = min(delay * 2, 0.05)
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)
        if not create:
            return None


class Session:
    """This process's claim on `<sessions>/<id>.lock`, held for the store's lifetime: leases
    of a session whose lock nobody holds belong to a dead process and may be reaped."""

    def __init__(self, directory: str, session_id: str):
        self.id = session_id
        self.lock_path = os.path.join(directory, f"{session_id}.lock")
        fd = lock_file(self.lock_path, wait=False)
        if fd is None:  # a fresh random name is never held by anyone else
            raise RuntimeError(f"session lock {self.lock_path} is held elsewhere")
        self._fd: int | None = fd

    def close(self) -> None:
        """Give up the claim and remove the lock file (idempotent)."""
        if self._fd is None:
            return
        try:
            os.unlink(self.lock_path)
        except FileNotFoundError:
            pass
        os.close(self._fd)
        self._fd = None
