"""Where BuildKit v0.11.6's binaries are (../shared/buildkit beside the repository, or
$LLB_BUILDKIT_DIR), and small helpers around them for tests of llb's BuildKit side."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]


def buildkit_dir() -> Path:
    """The directory holding bin/buildkitd, bin/buildctl, bin/llbjson and buildkitd-run."""
    env = os.environ.get("LLB_BUILDKIT_DIR")
    if env:
        return Path(env)
    for base in (_REPO.parent, Path("/work")):
        if (base / "shared" / "buildkit" / "bin").is_dir():
            return base / "shared" / "buildkit"
    return _REPO.parent / "shared" / "buildkit"


BIN = buildkit_dir() / "bin"
LLBJSON = BIN / "llbjson"
BUILDCTL = BIN / "buildctl"
BUILDKITD = BIN / "buildkitd"
RUN = buildkit_dir() / "buildkitd-run"
MISSING = (f"BuildKit v0.11.6 binaries not found in {BIN} (set LLB_BUILDKIT_DIR); "
           f"they ship beside the repository on the team's machines and CI")


def llbjson(graph: dict, *, unique: str = "U", digests: bool = False) -> bytes:
    """What BuildKit's Go client (via llbjson) marshals for `graph`."""
    args = [str(LLBJSON), "-local-unique", unique] + (["-digests"] if digests else [])
    done = subprocess.run(args, input=json.dumps(graph).encode(), capture_output=True,
                          check=True)
    return done.stdout


def go_digests(graph: dict, *, unique: str = "U") -> list[str]:
    """The Go client's op digests for `graph`, definition order (the terminal op last)."""
    return [o["digest"] for o in json.loads(llbjson(graph, unique=unique, digests=True))["ops"]]


class Daemon:
    """A throwaway buildkitd (buildkitd-run) with its root and socket in `directory`."""

    def __init__(self, directory: Path, snapshotter: str):
        self.directory = directory
        self.snapshotter = snapshotter
        done = subprocess.run([str(RUN), str(directory), snapshotter], capture_output=True,
                              text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"buildkitd-run failed: {done.stderr.strip()}")
        self.addr = done.stdout.strip().splitlines()[-1]

    def stop(self) -> None:
        """Stop the daemon, unmount what it left mounted, remove its directory."""
        import shutil
        import signal
        import time

        pid_file = self.directory / "buildkitd.pid"
        try:
            pid = int(pid_file.read_text())
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                os.kill(pid, 0)
                time.sleep(0.1)
            os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError):
            pass
        root = str(self.directory.resolve())
        with open("/proc/self/mountinfo") as f:
            mounts = [line.split()[4] for line in f]
        for target in sorted((m for m in mounts if m.startswith(root + "/")), reverse=True):
            subprocess.run(["umount", "-l", target], capture_output=True)
        shutil.rmtree(self.directory, ignore_errors=True)


def tree(top: Path) -> dict[str, tuple]:
    """Path -> (kind, permission bits, uid, gid, content or link target) for everything under
    `top`: what two exports must agree on (times are not compared)."""
    import stat

    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            st = p.lstat()
            rel = str(p.relative_to(top))
            if stat.S_ISLNK(st.st_mode):
                what: object = ("link", os.readlink(p))
            elif stat.S_ISREG(st.st_mode):
                what = ("file", p.read_bytes())
            elif stat.S_ISDIR(st.st_mode):
                what = ("dir",)
            else:
                what = ("special", st.st_rdev)
            out[rel] = (*what, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
    return out


def without_exec_stubs(t: dict[str, tuple]) -> dict[str, tuple]:
    """BuildKit leaves an exec's /dev, /proc and /sys mount points in its rootfs (empty
    directories); llb removes what the executor created (README: known differences)."""
    return {k: v for k, v in t.items()
            if not (k in ("dev", "proc", "sys") and v[0] == "dir")}
