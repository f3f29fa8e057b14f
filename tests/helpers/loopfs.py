"""A small ext4 filesystem on a loop device, for tests of a full disk: made with dd (a
sparse image), mkfs.ext4 and `mount -o loop` in a temporary directory (tests run as root),
filled to a given number of free KiB with a filler file, unmounted at the end.

mkfs.ext4 picks 1 KiB blocks for a filesystem this small: blocks smaller than a page, where
a store into a memory-mapped file's hole on a full disk is SIGBUS (what SQLite's WAL index
meets), so the tests see that case too. No blocks are reserved for root (-m 0): "full"
means full for the test's root process as well."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

import pytest


def loop_problem() -> str | None:
    """Why a loop-mounted ext4 cannot be made here, or None."""
    if os.geteuid() != 0:
        return "loop mounts need root"
    for tool in ("mkfs.ext4", "mount", "umount"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install e2fsprogs mount)"
    return None


class LoopFS:
    """An ext4 of `size_mib` MiB mounted at `<base>/mnt` (see the module docstring)."""

    def __init__(self, base: Path, size_mib: int = 64):
        base.mkdir(parents=True, exist_ok=True)
        self.image = base / "disk.img"
        self.mnt = base / "mnt"
        self.mnt.mkdir(exist_ok=True)
        with open(self.image, "wb") as f:
            f.truncate(size_mib << 20)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", str(self.image)], check=True,
                       capture_output=True)
        p = subprocess.run(["mount", "-o", "loop", str(self.image), str(self.mnt)],
                           capture_output=True, text=True)
        if p.returncode != 0:
            self.image.unlink()
            pytest.skip(f"cannot loop-mount an ext4 here: {p.stderr.strip()}")
        self._filler = self.mnt / ".filler"

    def free_kib(self) -> int:
        st = os.statvfs(self.mnt)
        return st.f_bavail * st.f_frsize // 1024

    def fill(self, free_kib: int) -> int:
        """Leave about `free_kib` KiB free (0: nothing at all); returns what is left."""
        self.unfill()
        os.sync()
        n = (self.free_kib() - free_kib) * 1024
        with open(self._filler, "wb", buffering=0) as f:
            if n > 0:
                try:
                    os.posix_fallocate(f.fileno(), 0, n)
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
            if free_kib == 0:  # the last blocks, one by one
                f.seek(0, os.SEEK_END)
                try:
                    while True:
                        f.write(b"\0" * 1024)
                        f.flush()
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
        return self.free_kib()

    def unfill(self) -> None:
        self._filler.unlink(missing_ok=True)

    def close(self) -> None:
        for _ in range(2):
            if subprocess.run(["umount", str(self.mnt)], capture_output=True).returncode == 0:
                break
            subprocess.run(["umount", "-l", str(self.mnt)], capture_output=True)
        self.image.unlink(missing_ok=True)
