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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from llb.ops import SHARING_LOCKED, SHARING_PRIVATE, SHARING_SHARED
from solver.errors import UnsupportedError

CACHE_DIR = "cache-mounts"


class CacheMounts:
    """The cache mount directories of one llb root."""

    def __init__(self, root: Path):
        self.dir = Path(root) / CACHE_DIR

    def path(self, cache_id: str) -> Path:
        """The directory holding every instance of `cache_id`."""
        return self.dir / hashlib.sha256(cache_id.encode()).hexdigest()[:32]

    @contextmanager
    def acquire(self, cache_id: str, sharing: str = SHARING_SHARED) -> Iterator[Path]:
        """Yield the directory to mount for `cache_id`, holding its lock while in use."""
        if sharing not in (SHARING_SHARED, SHARING_PRIVATE, SHARING_LOCKED):
            raise UnsupportedError(f"unknown cache mount sharing mode {sharing!r}")
        base = self.path(cache_id)
        base.mkdir(parents=True, exist_ok=True)
        idfile = base / "id"
        if not idfile.exists():
            tmp = base / f".id.{os.getpid()}.{id(self)}"
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
            fcntl.flock(fd, fcntl.LOCK_SH if sharing == SHARING_SHARED else fcntl.LOCK_EX)
        try:
            inst = base / str(n)
            inst.mkdir(mode=0o755, exist_ok=True)
            yield inst
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _open_lock(base: Path, n: int) -> int:
    return os.open(base / f"{n}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
