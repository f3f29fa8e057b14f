"""What a stopped or killed `llb` process may leave behind, looked up independently of llb's
own bookkeeping: processes (by a token in their command line), runc containers of a root,
mounts under a path, and the session temporaries of a root."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from llb.executor.orphans import BUNDLES, OWNERS, RUNC_STATE, run_dirs


def processes_with(token: str) -> list[str]:
    """Command lines of live processes (not zombies) whose argv holds `token`."""
    found = []
    me = os.getpid()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == me:
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            with open(f"/proc/{pid}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        line = b" ".join(a for a in argv if a)
        if state != b"Z" and token.encode() in line:
            found.append(line.decode(errors="replace"))
    return found


def containers(root: Path) -> list[str]:
    """runc containers, bundles and owner files kept for the executor of an llb root."""
    out = []
    for rd in run_dirs(root / "executor"):
        for sub in (RUNC_STATE, BUNDLES, OWNERS):
            d = rd / sub
            if d.is_dir():
                out += [f"{sub}/{n}" for n in os.listdir(d)]
        if (rd / RUNC_STATE).is_dir():
            listed = subprocess.run(["runc", "--root", str(rd / RUNC_STATE), "list", "-q"],
                                    capture_output=True, text=True).stdout.split()
            out += [f"runc list: {c}" for c in listed]
    return out


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below path in this mount namespace."""
    pre = str(path).rstrip("/")
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].encode().decode("unicode_escape")
            if point == pre or point.startswith(pre + "/"):
                out.append(point)
    return out


def session_temps(root: Path) -> list[str]:
    """Entries under <root>/tmp (sessions' temporaries; none once every process ended)."""
    tmp = root / "tmp"
    return sorted(os.listdir(tmp)) if tmp.is_dir() else []
