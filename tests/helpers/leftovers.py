"""What a stopped or killed `llb` process may leave behind, looked up independently of llb's
own bookkeeping: processes (by a token in their command line), runc containers of a root,
mounts under a path, and the session temporaries of a root; and `finish`, which waits for
an `llb` process and, if it is stuck, fails with where it is."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from llb.executor.orphans import BUNDLES, OWNERS, RUNC_STATE, run_dirs

STACKS_ENV = {"PYTHONFAULTHANDLER": "1"}  # an llb run with these prints its stacks on SIGABRT


def finish(p: subprocess.Popen, timeout: float, what: str) -> tuple[bytes, bytes]:
    """p's stdout and stderr once it ends. If it has not within `timeout` seconds, fail with
    its kernel wait channel and, for a process started with STACKS_ENV, every thread's Python
    stack (SIGABRT makes faulthandler print them), instead of waiting for ever."""
    try:
        return p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    try:
        with open(f"/proc/{p.pid}/wchan") as f:
            wchan = f.read()
    except OSError:
        wchan = "?"
    p.send_signal(signal.SIGABRT)
    try:
        _, err = p.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
    raise AssertionError(f"{what}: still running after {timeout:.0f} s (wait channel {wchan}); "
                         f"its stderr:\n{(err or b'').decode(errors='replace')[-6000:]}")


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
