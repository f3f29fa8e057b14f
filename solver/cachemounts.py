"""Cache mounts: directories persistent by id across execs and solves, never part of a result.

They live under `<llb root>/cache-mounts/<sha256(id)[:32]>/<instance>/`, outside every
snapshot, so no output, diff or cache record can ever include them. Sharing modes follow
BuildKit's:
- shared: every exec uses instance 0 at the same time (a shared flock on it);
- locked: execs take turns on instance 0 (an exclusive flock, waiting for the holder);
- private: an exec takes the first instance nobody holds (exclusive, non-blocking), and
  creates a new one when all are busy.
flock(2) locks are per open file, so they hold between threads and between processes that
share a root alike.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from llb.fsutil import disk_usage, remove_tree
from llb.ops import SHARING_LOCKED, SHARING_PRIVATE, SHARING_SHARED
from llb.solver.errors import SolveCancelledError, UnsupportedError

CACHE_DIR = "cache-mounts"
_LOCK_POLL = 0.05  # seconds between lock attempts while watching for cancellation


class CacheMounts:
    """The cache mount directories of one llb root."""

    def __init__(self, root: Path):
        self.dir = Path(root) / CACHE_DIR

    def path(self, cache_id: str) -> Path:
        """The directory holding every instance of `cache_id`."""
        return self.dir / hashlib.sha256(cache_id.encode()).hexdigest()[:32]

    @contextmanager
    def acquire(self, cache_id: str, sharing: str = SHARING_SHARED,
                cancelled: threading.Event | None = None) -> Iterator[Path]:
        """Yield the directory to mount for `cache_id`, holding its lock while in use.
        Waiting for a lock (locked, or shared while another holds it locked) stops with
        SolveCancelledError once `cancelled` is set."""
        if sharing not in (SHARING_SHARED, SHARING_PRIVATE, SHARING_LOCKED):
            raise UnsupportedError(f"unknown cache mount sharing mode {sharing!r}")
        base = self.path(cache_id)
        base.mkdir(parents=True, exist_ok=True)
        idfile = base / "id"
        if not idfile.exists():
            tmp = base / f".id.{uuid.uuid4().hex}"
            tmp.write_text(cache_id + "\n")
            os.replace(tmp, idfile)
        if sharing == SHARING_PRIVATE:
            n = 0
            while True:
                fd = _open_lock(base, n)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    n += 1
                    continue
                break
        else:
            n = 0
            fd = _open_lock(base, n)
            try:
                _wait_lock(fd, fcntl.LOCK_SH if sharing == SHARING_SHARED else fcntl.LOCK_EX,
                           cancelled, cache_id)
            except BaseException:
                os.close(fd)
                raise
        try:
            inst = base / str(n)
            inst.mkdir(mode=0o755, exist_ok=True)
            yield inst
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


    def ids(self) -> list[str]:
        """Every cache mount id this root holds."""
        out = []
        if self.dir.is_dir():
            for d in sorted(self.dir.iterdir()):
                try:
                    out.append((d / "id").read_text().rstrip("\n"))
                except OSError:
                    continue
        return out

    def usage(self, cache_id: str) -> int:
        """Bytes used by every instance of cache_id (each inode counted once)."""
        return disk_usage([self.path(cache_id)])

    def prune(self) -> int:
        """Remove the content of every cache instance no exec holds; bytes freed."""
        freed = 0
        for cache_id in self.ids():
            base = self.path(cache_id)
            for lock in sorted(base.glob("*.lock")):
                fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC)
                try:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        continue  # in use right now
                    inst = base / lock.name[: -len(".lock")]
                    if inst.is_dir():
                        before = self.usage(cache_id)
                        remove_tree(inst)
                        freed += before - self.usage(cache_id)
                finally:
                    os.close(fd)
        return freed


def _wait_lock(fd: int, kind: int, cancelled: threading.Event | None, cache_id: str) -> None:
    if cancelled is None:
        fcntl.flock(fd, kind)
        return
    while True:
        try:
            fcntl.flock(fd, kind | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if cancelled.wait(_LOCK_POLL):
                raise SolveCancelledError(f"cancelled while waiting for cache mount {cache_id!r}")


def _open_lock(base: Path, n: int) -> int:
    return os.open(base / f"{n}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
