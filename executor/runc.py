"""The runc executor: run one process in an OCI runtime bundle and report its exit code.

`Executor.run` writes a bundle (config.json per the OCI runtime spec, rootfs given as an
absolute path), runs `runc run` on it, streams stdout/stderr line by line to a callback,
and afterwards removes the mount stubs runc had to create (`llb.executor.stubs`) so that a diff
of the rootfs holds only what the process changed. The system stubs (/proc, /dev, /sys,
/etc/hosts, /etc/resolv.conf) cost nothing per run where they can be avoided: an overlay
rootfs shows them from `Executor.underlay()` beneath its layers, a plain rootfs gets them
renamed in from a pool and back (`llb.executor.stubs.StubPool`); runc creating them in a fresh rootfs, and
us deleting them, cost ~5 ms a run (and every deletion slows later file creations on ext4
without a journal).

The configuration that works on the target VM (Debian 12, runc 1.1.5, kernel 6.x, root, a
cgroup v1 hybrid hierarchy, no user namespaces needed):
- namespaces: pid, ipc, uts, mount, and network unless network="host" (a fresh network
  namespace holds only `lo`, which runc brings up);
- `linux.cgroupsPath` = "/llb/<container id>" (runc creates and removes it in every v1
  hierarchy; no systemd cgroup driver);
- no seccomp profile (runc's libseccomp works, but BuildKit's default profile is a large
  allow-list we do not ship; isolation comes from namespaces, capabilities and masked paths);
- capabilities: containerd's default set (what BuildKit grants a RUN), no rlimits, new
  privileges allowed (BuildKit's `WithNewPrivileges`);
- mounts: /proc, a tmpfs /dev (runc creates the default device nodes), /dev/pts,
  /dev/shm, /dev/mqueue, a read-only /sys; /etc/hosts and /etc/resolv.conf bind-mounted
  read-only from the executor's state directory; binds use "rbind" plus "ro" when read-only
  (runc remounts a bind read-only, so a write fails inside with EROFS);
- a read-only rootfs is `root.readonly`: runc creates mount points first, then remounts "/".
runc keeps its state (`runc --root`) and the bundles on a tmpfs (/run/llb/<key> or
/dev/shm/llb/<key>, else `<llb root>/executor`): on ext4 runc's state writes alone cost
10-20 ms per run. Its own errors go to a per-run log file (`runc --log`) so they can be told
apart from the process's exit code. Right after `runc run` returns, the dying container's
mount namespace can still pin the /proc, /dev and /sys stubs (rmdir or rename fails with
EBUSY for a few ms, rarely ~200 ms), so their removal is retried.
"""

from __future__ import annotations

import hashlib
import json
import os
import selectors
import shutil
import subprocess
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from llb.fsutil import remove_tree
from llb.errors import LLBError
from llb.ops import DEFAULT_PATH
from llb.executor.orphans import RUN_LINK, OwnerLock
from llb.executor.stubs import FILE_STUBS, SYSTEM_STUBS, StubPool, Stubs, dest_parts, norm_dest

DEFAULT_HOSTNAME = "buildkitsandbox"
LOG_TAIL_LINES = 20
_CANCEL_POLL = 0.1  # seconds between checks of the cancel event while a process runs
_MAX_LINE = 64 * 1024

# containerd's default capability set, which BuildKit gives every exec.
_CAPABILITIES = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
]
_MASKED_PATHS = [
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
]
_READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
_UNDERLAY = "underlay-v1"  # a new name whenever its content changes
_RESOLV_DEFAULT_NAMESERVERS = ["8.8.8.8", "8.8.4.4", "2001:4860:4860::8888", "2001:4860:4860::8844"]


class ExecutorError(LLBError):
    """The executor could not run a process at all (runc missing or failing to start)."""

    exit_code = 1


class RuncNotFoundError(ExecutorError):
    """runc is not installed."""

    def __init__(self) -> None:
        super().__init__("runc not found: Exec ops run under runc; install it with "
                         "`apt-get install runc`")


@dataclass(frozen=True)
class BindMount:
    """Bind `source` (a host path: directory or file) at `dest` inside the container."""

    dest: str
    source: Path
    readonly: bool = False


@dataclass(frozen=True)
class TmpfsMount:
    """A fresh tmpfs at `dest` (size in bytes, 0 = the kernel default)."""

    dest: str
    size: int = 0


ContainerMount = BindMount | TmpfsMount


@dataclass
class ProcessSpec:
    """What to run and as whom; env is "KEY=value" strings (PATH is defaulted if absent)."""

    args: Sequence[str]
    env: Sequence[str] = ()
    cwd: str = "/"
    uid: int = 0
    gid: int = 0
    additional_gids: Sequence[int] = ()
    hostname: str = ""
    network: str = "none"  # "none" | "host"
    readonly_rootfs: bool = False
    mounts: Sequence[ContainerMount] = field(default_factory=list)


@dataclass
class RunResult:
    """How a run ended: the exit code, the last lines of output, and runc's own error."""

    exit_code: int
    tail: list[str]
    runc_error: str = ""
    cancelled: bool = False


LogFn = Callable[[str, bytes], None]


class Executor:
    """Runs processes under runc. hosts/resolv.conf files live in state_dir; runc's state
    and the bundles in `run_dir` (a tmpfs when there is one: see `_run_dir`)."""

    def __init__(self, state_dir: Path, runc: str | None = None):
        self.state_dir = Path(state_dir)
        self.runc = runc or shutil.which("runc") or ""
        if not self.runc:
            raise RuncNotFoundError()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir = _run_dir(self.state_dir)
        self._runc_root = self.run_dir / "runc"
        self._bundles = self.run_dir / "bundles"
        for d in (self._runc_root, self._bundles):
            d.mkdir(parents=True, exist_ok=True)
        self._files_lock = threading.Lock()
        self._written: dict[str, str] = {}
        self._underlay: Path | None = None
        self._pool = StubPool(self.state_dir / "stubs")

    # ------------------------------------------------------------------------------ run

    def run(self, rootfs: Path, spec: ProcessSpec, *, log: LogFn | None = None,
            cancelled: threading.Event | None = None) -> RunResult:
        """Run spec.args in rootfs; block until it exits (or is killed on `cancelled`)."""
        cid = "llb-" + uuid.uuid4().hex[:20]
        owner = OwnerLock(self.run_dir, cid)  # held until the container is gone (orphans.py)
        owner.acquire()
        bundle = self._bundles / cid
        stubs: Stubs | None = None
        try:
            bundle.mkdir()
            mounts = sorted(spec.mounts, key=lambda m: dest_parts(m.dest))
            # a system stub that is also a mount's destination must be what that mount needs
            poolable = set(SYSTEM_STUBS) - {norm_dest(m.dest) for m in mounts}
            stubs = Stubs(Path(rootfs), [m for m in mounts if isinstance(m, BindMount)],
                          self._pool, poolable)
            stubs.record(list(SYSTEM_STUBS) + [m.dest for m in mounts])
            config = self._config(cid, Path(rootfs), spec, mounts)
            (bundle / "config.json").write_text(json.dumps(config))
            return self._run_runc(cid, bundle, log, cancelled)
        finally:
            try:
                if (self._runc_root / cid).exists():  # runc run did not get to delete it
                    self._delete(cid)
                if stubs is not None:
                    stubs.clean()
                try:
                    remove_tree(bundle)
                except OSError:
                    pass  # left for _reap_run_dirs
            finally:
                owner.release()

    def _run_runc(self, cid: str, bundle: Path, log: LogFn | None,
                  cancelled: threading.Event | None) -> RunResult:
        runc_log = bundle / "runc.log"
        argv = [self.runc, "--root", str(self._runc_root), "--log", str(runc_log),
                "--log-format", "json", "run", "--bundle", str(bundle), cid]
        if cancelled is not None and cancelled.is_set():
            return RunResult(exit_code=-1, tail=[], cancelled=True)
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, close_fds=True)
        assert proc.stdout is not None and proc.stderr is not None  # (PIPE)
        lines = _Lines(log)
        was_cancelled = False
        last_kill = 0.0
        with selectors.DefaultSelector() as sel:
            for pipe, name in ((proc.stdout, "stdout"), (proc.stderr, "stderr")):
                sel.register(pipe.fileno(), selectors.EVENT_READ, name)
            while sel.get_map():
                timeout = None if cancelled is None else _CANCEL_POLL
                # stdout first when both have data: right for a process that wrote to
                # stdout, then stderr, before we woke (order across pipes is not kept)
                for key, _ in sorted(sel.select(timeout), key=lambda e: e[0].data != "stdout"):
                    data = os.read(key.fd, 65536)
                    if data:
                        lines.feed(key.data, data)
                    else:
                        sel.unregister(key.fd)
                        lines.close(key.data)
                if cancelled is not None and cancelled.is_set():
                    now = time.monotonic()
                    if now - last_kill >= _CANCEL_POLL:  # again until runc has the container
                        was_cancelled = True
                        last_kill = now
                        self._kill(cid)
        proc.stdout.close()
        proc.stderr.close()
        code = proc.wait()
        if was_cancelled:
            self._delete(cid)
        return RunResult(exit_code=code, tail=list(lines.tail), runc_error=_runc_error(runc_log),
                         cancelled=was_cancelled)

    def _kill(self, cid: str) -> None:
        subprocess.run([self.runc, "--root", str(self._runc_root), "kill", cid, "KILL"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)

    def _delete(self, cid: str) -> None:
        subprocess.run([self.runc, "--root", str(self._runc_root), "delete", "--force", cid],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)

    def underlay(self) -> Path:
        """A directory holding every system stub as an empty directory or file (proc, dev,
        sys, etc/hosts, etc/resolv.conf), never modified once made: shown beneath a rootfs
        (an overlay's bottom layer, see Store.prepare) it spares runc creating the stubs
        in the rootfs (copying /etc up) and us removing them after the run."""
        if self._underlay is None:
            final = self.state_dir / _UNDERLAY
            if not final.is_dir():
                tmp = self.state_dir / f".{_UNDERLAY}.{uuid.uuid4().hex[:8]}"
                for stub in ("/", "/etc") + SYSTEM_STUBS:  # directories before their files
                    p = tmp / stub.lstrip("/")
                    if stub in FILE_STUBS:
                        os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL))
                    else:
                        os.mkdir(p)
                    os.chmod(p, 0o644 if stub in FILE_STUBS else 0o755)  # whatever the umask
                try:
                    os.rename(tmp, final)
                except OSError:  # another process made it first
                    remove_tree(tmp)
            self._underlay = final
        return self._underlay

    # ------------------------------------------------------------------------------ config

    def _config(self, cid: str, rootfs: Path, spec: ProcessSpec,
                mounts: list[ContainerMount]) -> dict:
        env = list(spec.env)
        if not any(e.startswith("PATH=") for e in env):
            env.insert(0, "PATH=" + DEFAULT_PATH)
        host_network = spec.network == "host"
        hostname = spec.hostname or DEFAULT_HOSTNAME
        namespaces = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
        if not host_network:
            namespaces.append({"type": "network"})
        user_dests = {norm_dest(m.dest) for m in mounts}
        oci_mounts = _system_mounts()
        for dest, src in (("/etc/hosts", self._hosts_file(hostname)),
                          ("/etc/resolv.conf", self._resolv_conf(host_network))):
            if dest not in user_dests:
                oci_mounts.append({"destination": dest, "type": "bind", "source": str(src),
                                   "options": ["rbind", "ro"]})
        for m in mounts:
            if isinstance(m, TmpfsMount):
                opts = ["nosuid", "nodev", "strictatime", "mode=1777"]
                if m.size:
                    opts.append(f"size={m.size}")
                oci_mounts.append({"destination": m.dest, "type": "tmpfs", "source": "tmpfs",
                                   "options": opts})
            else:
                opts = ["rbind", "ro"] if m.readonly else ["rbind"]
                oci_mounts.append({"destination": m.dest, "type": "bind",
                                   "source": str(m.source), "options": opts})
        return {
            "ociVersion": "1.0.2",
            "process": {
                "terminal": False,
                "user": {"uid": spec.uid, "gid": spec.gid,
                         **({"additionalGids": list(spec.additional_gids)}
                            if spec.additional_gids else {})},
                "args": list(spec.args),
                "env": env,
                "cwd": spec.cwd or "/",
                "capabilities": {k: list(_CAPABILITIES) for k in
                                 ("bounding", "effective", "permitted")},
                "noNewPrivileges": False,
            },
            "root": {"path": str(rootfs), "readonly": spec.readonly_rootfs},
            "hostname": hostname,
            "mounts": oci_mounts,
            "linux": {
                "cgroupsPath": f"/llb/{cid}",
                "resources": {"devices": [{"allow": False, "access": "rwm"}]},
                "namespaces": namespaces,
                "maskedPaths": list(_MASKED_PATHS),
                "readonlyPaths": list(_READONLY_PATHS),
            },
        }

    def _hosts_file(self, hostname: str) -> Path:
        """/etc/hosts as BuildKit writes it (one file per hostname)."""
        safe = "".join(c if c.isalnum() or c in "-." else "_" for c in hostname)
        content = (f"127.0.0.1\tlocalhost {hostname}\n"
                   "::1\tlocalhost ip6-localhost ip6-loopback\n")
        return self._state_file(f"hosts.{safe}", content)

    def _resolv_conf(self, host_network: bool) -> Path:
        """The host's resolv.conf; without host networking, localhost resolvers are dropped
        (they are unreachable from the container) and Google's are used if none is left."""
        try:
            text = Path("/etc/resolv.conf").read_text(errors="replace")
        except OSError:
            text = ""
        if not host_network or not _nameservers(text):
            text = _filter_resolv(text)
        name = "resolv-host.conf" if host_network else "resolv.conf"
        return self._state_file(name, text)

    def _state_file(self, name: str, content: str) -> Path:
        """state_dir/name holding content (rewritten atomically only when it changes)."""
        path = self.state_dir / name
        with self._files_lock:
            if self._written.get(name) == content:
                return path
            try:
                current = path.read_text()
            except OSError:
                current = None
            if current != content:
                tmp = path.with_name(f".{name}.{uuid.uuid4().hex[:8]}")
                tmp.write_text(content)
                tmp.chmod(0o644)
                os.replace(tmp, path)
            self._written[name] = content
        return path


# ---------------------------------------------------------------------------------- helpers


def _run_dir(state_dir: Path) -> Path:
    """Where runc's state and the bundles go: /run/llb or /dev/shm/llb (one directory per
    state_dir) when that is a tmpfs, since runc's state writes and the stub and bundle
    removals cost milliseconds each on a journalling filesystem; else state_dir itself."""
    tmpfs = _tmpfs_mounts()
    owner = str(state_dir.resolve())
    key = hashlib.sha256(owner.encode()).hexdigest()[:16]
    for base in ("/run", "/dev/shm"):
        if base in tmpfs and os.access(base, os.W_OK):
            top = Path(base) / "llb"
            d = top / key
            try:
                d.mkdir(mode=0o700, parents=True, exist_ok=True)
                (d / "owner").write_text(owner)
                _link_run_dir(state_dir, d)
            except OSError:
                continue
            _reap_run_dirs(top, keep=d)
            return d
    return state_dir


def _link_run_dir(state_dir: Path, run_dir: Path) -> None:
    """Point `<state_dir>/run` at the run directory, so that finding the containers of dead
    processes (llb.executor.orphans) needs neither hashing nor a look at the mount table."""
    link = state_dir / RUN_LINK
    try:
        if os.readlink(link) == str(run_dir):
            return
    except OSError:
        pass
    tmp = state_dir / f".{RUN_LINK}.{uuid.uuid4().hex[:8]}"
    os.symlink(run_dir, tmp)
    os.replace(tmp, link)


def _reap_run_dirs(top: Path, keep: Path) -> None:
    """Remove run directories whose llb root is gone and that hold no container state
    (left by roots that were deleted, e.g. test roots)."""
    for d in top.iterdir():
        if d == keep:
            continue
        try:
            owner = (d / "owner").read_text()
            if os.path.exists(owner) or any((d / "runc").iterdir()):
                continue
            remove_tree(d)
        except OSError:
            continue


def _tmpfs_mounts() -> set[str]:
    try:
        with open("/proc/self/mounts") as f:
            return {parts[1] for parts in (line.split() for line in f)
                    if len(parts) > 2 and parts[2] == "tmpfs"}
    except OSError:
        return set()


def _system_mounts() -> list[dict]:
    return [
        {"destination": "/proc", "type": "proc", "source": "proc",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
    ]


class _Lines:
    """Splits a process's output into lines per stream: the complete lines of each read go
    to `log` together (one progress event per read, not per line: a process printing
    short lines would otherwise cost an event of ~200 bytes for each) and the last ones
    into the tail; a line longer than _MAX_LINE is cut."""

    def __init__(self, log: LogFn | None):
        self.log = log
        self.tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
        self._partial: dict[str, bytes] = {}

    def feed(self, stream: str, data: bytes) -> None:
        buf = self._partial.pop(stream, b"") + data
        cut = buf.rfind(b"\n") + 1
        if cut:
            self._emit(stream, buf[:cut])
        rest = buf[cut:]
        while len(rest) > _MAX_LINE:
            self._emit(stream, rest[:_MAX_LINE])
            rest = rest[_MAX_LINE:]
        if rest:
            self._partial[stream] = rest

    def close(self, stream: str) -> None:
        rest = self._partial.pop(stream, b"")
        if rest:
            self._emit(stream, rest)

    def _emit(self, stream: str, lines: bytes) -> None:
        """Log whole lines (or a cut piece of a long one) and keep the last in the tail."""
        if self.log is not None:
            self.log(stream, lines)
        last = lines[:-1] if lines.endswith(b"\n") else lines
        for line in last.rsplit(b"\n", LOG_TAIL_LINES)[-LOG_TAIL_LINES:]:
            self.tail.append(line.decode(errors="replace"))


def _runc_error(path: Path) -> str:
    """The last error runc itself logged (not the process's output), or ""."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    for line in reversed(lines):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("level") in ("error", "fatal"):
            return str(entry.get("msg", "")).strip()
    return ""


def _nameservers(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            out.append(parts[1])
    return out


def _filter_resolv(text: str) -> str:
    """Drop localhost nameservers (like libnetwork's FilterResolvDNS); default if none."""
    kept = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            ip = parts[1].split("%")[0]
            if ip.startswith("127.") or ip == "::1":
                continue
        kept.append(line)
    out = "\n".join(kept).strip("\n")
    out = out + "\n" if out else ""
    if not _nameservers(out):
        out += "".join(f"nameserver {ns}\n" for ns in _RESOLV_DEFAULT_NAMESERVERS)
    return out
