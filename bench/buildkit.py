"""Real BuildKit v0.11.6 (../shared/buildkit) for side-by-side benchmarks: a throwaway daemon,
the Go client's definition of a JSON graph (llbjson), and timed `buildctl build` runs."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import time
from pathlib import Path

HOME = Path(os.environ.get("LLB_BUILDKIT", Path(__file__).resolve().parents[2] / "shared" / "buildkit"))
if not (HOME / "bin" / "buildkitd").exists():
    HOME = Path("/work/shared/buildkit")
BIN = HOME / "bin"


def available() -> str | None:
    """None if BuildKit can run here, else why not."""
    if not (BIN / "buildkitd").exists():
        return f"no BuildKit at {HOME}"
    if os.geteuid() != 0:
        return "buildkitd needs root"
    if subprocess.run(["sh", "-c", "command -v runc"], stdout=subprocess.DEVNULL).returncode:
        return "buildkitd needs runc on PATH"
    return None


def definition(graph_json: str, out: Path) -> Path:
    """Write the Go client's Definition of the graph to `out` (local sources get a fixed
    local.unique, so that cold and cached runs solve the same definition)."""
    p = subprocess.run([str(BIN / "llbjson"), "-local-unique", "llb-bench"],
                       input=graph_json.encode(), capture_output=True)
    if p.returncode != 0:
        raise RuntimeError(f"llbjson failed: {p.stderr.decode(errors='replace').strip()}")
    out.write_bytes(p.stdout)
    return out


class Daemon:
    """A buildkitd with its root, socket and log in `where` (a fresh directory)."""

    def __init__(self, where: Path, snapshotter: str) -> None:
        self.dir = where
        p = subprocess.run([str(HOME / "buildkitd-run"), str(where), snapshotter],
                           capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"buildkitd-run failed: {p.stderr.strip()[-400:]}")
        self.addr = p.stdout.strip().splitlines()[-1]
        self.pid = int((where / "buildkitd.pid").read_text())

    def build(self, definition: Path, dest: Path, locals_: dict[str, Path],
              timeout: float | None = None) -> tuple[float, float, int, str]:
        """(wall seconds, CPU seconds, exit code, stderr tail) of `buildctl build` exporting
        to `dest`; the CPU seconds (user + system) are the daemon's (with its reaped
        children, runc) and buildctl's during the build."""
        argv = [str(BIN / "buildctl"), "--addr", self.addr, "build", "--progress", "plain",
                "--output", f"type=local,dest={dest}"]
        for name, path in locals_.items():
            argv += ["--local", f"{name}={path}"]
        with open(definition, "rb") as stdin:
            d0, c0 = self.cpu(), _children_cpu()
            t0 = time.perf_counter()
            try:
                p = subprocess.run(argv, stdin=stdin, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, timeout=timeout)
            except subprocess.TimeoutExpired:
                return time.perf_counter() - t0, 0.0, -1, f"timed out after {timeout} s"
            wall = time.perf_counter() - t0
            cpu = self.cpu() - d0 + _children_cpu() - c0
        return wall, cpu, p.returncode, p.stderr.decode(errors="replace")[-800:]

    def cpu(self) -> float:
        """CPU seconds the daemon (and its reaped children) used so far."""
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            return 0.0
        return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        """Stop the daemon (SIGTERM, then SIGKILL after 10 s) and lazily unmount what it
        left mounted under its directory; nothing is deleted."""
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        else:
            # buildkitd-run started it with setsid: it is not our child, so poll its pid (a
            # zombie waiting for its new parent to reap it has exited too)
            for _ in range(200):
                if not _alive(self.pid):
                    break
                time.sleep(0.05)
            else:
                os.kill(self.pid, signal.SIGKILL)
        unmount_under(self.dir)


def _children_cpu() -> float:
    """CPU seconds of this process's waited-for children so far."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def unmount_under(path: Path) -> None:
    """Lazily unmount anything mounted under path, deepest first."""
    prefix = str(path).rstrip("/") + "/"
    with open("/proc/self/mounts") as f:
        points = [line.split()[1] for line in f]
    for point in sorted((p for p in points if p.startswith(prefix) or p == str(path)),
                        reverse=True):
        subprocess.run(["umount", "-l", point], stderr=subprocess.DEVNULL)
