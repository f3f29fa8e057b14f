"""Per-process sessions of a root: a session's lock tells a live process's temporaries
from a dead one's. (The root's global lock, serialising every change of the snapshot
directories and DB, is an llb.fsutil.locks.Mutex on `<root>/lock`.)"""

from __future__ import annotations

import os

from llb.fsutil.locks import Claim


class Session:
    """This process's claim on `<root>/tmp/<sid>/`: held with flock on `<sid>.lock` for the
    store's lifetime, so another process may delete the directory only once we are dead."""

    def __init__(self, tmp: str, sid: str):
        self.id = sid
        self.dir = os.path.join(tmp, sid)
        self.lock_path = os.path.join(tmp, f"{sid}.lock")
        self._claim = Claim(self.lock_path)
        try:
            os.mkdir(self.dir, 0o700)
        except BaseException:  # e.g. a full disk: no half session left behind
            self._claim.close()
            raise

    def close(self) -> None:
        """End the session: its lock file goes with it (its directory is the caller's)."""
        self._claim.close()
