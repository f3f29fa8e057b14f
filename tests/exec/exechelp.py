"""Helpers for exec tests: a usable runc (or a skip saying why) and a plain busybox rootfs."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

BUSYBOX = Path("/bin/busybox")


def runc_problem() -> str | None:
    """Why Exec ops cannot run here, or None when runc works."""
    if os.geteuid() != 0:
        return "runc needs root"
    if shutil.which("runc") is None:
        return "runc is not installed (apt-get install runc)"
    if not BUSYBOX.is_file():
        return "busybox-static is not installed (apt-get install busybox-static)"
    try:
        subprocess.run(["runc", "--version"], check=True, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as e:
        return f"runc does not run: {e}"
    return None


_PROBLEM = runc_problem()
needs_runc = pytest.mark.skipif(_PROBLEM is not None, reason=_PROBLEM or "")


def make_busybox_rootfs(root: Path) -> Path:
    """A minimal root: /bin/busybox with relative applet symlinks, /etc/passwd and group."""
    (root / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    applets = subprocess.run([str(BUSYBOX), "--list"], check=True, capture_output=True,
                             text=True).stdout.split()
    for a in applets:
        if a != "busybox":
            os.symlink("busybox", root / "bin" / a)
    (root / "etc").mkdir()
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\n"
        "app:x:1000:1000:app:/home/app:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    (root / "etc" / "group").write_text(
        "root:x:0:\nwheel:x:10:app\napp:x:1000:\nnogroup:x:65534:\n")
    return root
