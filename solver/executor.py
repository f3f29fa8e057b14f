"""The runc executor: run one process in an OCI runtime bundle and report its exit code.

`Executor.run` writes a bundle (config.json per the OCI runtime spec, rootfs given as an
absolute path), runs `runc run` on it, streams stdout/stderr line by line to a callback,
and afterwards removes the mount stubs runc had to create (see `_Stubs`) so that a diff of
the rootfs holds only what the process changed. The system stubs (/proc, /dev, /sys,
/etc/hosts, /etc/resolv.conf) cost nothing per run where they can be avoided: an overlay
rootfs shows them from `Executor.underlay()` beneath its layers, a plain rootfs gets them
renamed in from a pool and back (`_StubPool`); runc creating them in a fresh rootfs, and
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
import stat
import subprocess
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from llb.errors import LLBError
from snapshot.mount import retry_busy
from snapshot.paths import resolve_in_root

DEFAULT_HOSTNAME = "buildkitsandbox"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
LOG_TAIL_LINES = 20
_CANCEL_POLL = 0.1  # seconds between checks of the cancel event while a process runs
_MAX_LINE = 64 * 1024
_BUSY_WAIT = 2.0  # seconds to wait for a dying mount namespace to let go of a stub

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
# Paths runc (or we) create in every rootfs; removed after the run when they were absent.
_SYSTEM_STUBS = ("/proc", "/dev", "/sys", "/etc/hosts", "/etc/resolv.conf")
_FILE_STUBS = ("/etc/hosts", "/etc/resolv.conf")  # bind-mounted files; the rest directories
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
        self._pool = _StubPool(self.state_dir / "stubs")

    # ------------------------------------------------------------------------------ run

    def run(self, rootfs: Path, spec: ProcessSpec, *, log: LogFn | None = None,
            cancelled: threading.Event | None = None) -> RunResult:
        """Run spec.args in rootfs; block until it exits (or is killed on `cancelled`)."""
        cid = "llb-" + uuid.uuid4().hex[:20]
        bundle = self._bundles / cid
        bundle.mkdir()
        mounts = sorted(spec.mounts, key=lambda m: _depth(m.dest))
        # a system stub that is also a mount's destination must be what that mount needs
        poolable = set(_SYSTEM_STUBS) - {_norm(m.dest) for m in mounts}
        stubs = _Stubs(Path(rootfs), [m for m in mounts if isinstance(m, BindMount)],
                       self._pool, poolable)
        stub_paths = list(_SYSTEM_STUBS) + [m.dest for m in mounts]
        stubs.record(stub_paths)
        try:
            config = self._config(cid, Path(rootfs), spec, mounts)
            (bundle / "config.json").write_text(json.dumps(config))
            return self._run_runc(cid, bundle, log, cancelled)
        finally:
            stubs.clean()
            shutil.rmtree(bundle, ignore_errors=True)

    def _run_runc(self, cid: str, bundle: Path, log: LogFn | None,
                  cancelled: threading.Event | None) -> RunResult:
        runc_log = bundle / "runc.log"
        argv = [self.runc, "--root", str(self._runc_root), "--log", str(runc_log),
                "--log-format", "json", "run", "--bundle", str(bundle), cid]
        if cancelled is not None and cancelled.is_set():
            return RunResult(exit_code=-1, tail=[], cancelled=True)
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, close_fds=True)
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
                for stub in ("/", "/etc") + _SYSTEM_STUBS:  # directories before their files
                    p = tmp / stub.lstrip("/")
                    if stub in _FILE_STUBS:
                        os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL))
                    else:
                        os.mkdir(p)
                    os.chmod(p, 0o644 if stub in _FILE_STUBS else 0o755)  # whatever the umask
                try:
                    os.rename(tmp, final)
                except OSError:  # another process made it first
                    shutil.rmtree(tmp, ignore_errors=True)
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
        user_dests = {_norm(m.dest) for m in mounts}
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
            except OSError:
                continue
            _reap_run_dirs(top, keep=d)
            return d
    return state_dir


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
            shutil.rmtree(d)
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
    """Splits a process's output into lines per stream: each complete line goes to `log`
    (with its newline) and into the tail; a line longer than _MAX_LINE is cut."""

    def __init__(self, log: LogFn | None):
        self.log = log
        self.tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
        self._partial: dict[str, bytes] = {}

    def feed(self, stream: str, data: bytes) -> None:
        buf = self._partial.pop(stream, b"") + data
        *complete, rest = buf.split(b"\n")
        for line in complete:
            self._emit(stream, line + b"\n")
        while len(rest) > _MAX_LINE:
            self._emit(stream, rest[:_MAX_LINE])
            rest = rest[_MAX_LINE:]
        if rest:
            self._partial[stream] = rest

    def close(self, stream: str) -> None:
        rest = self._partial.pop(stream, b"")
        if rest:
            self._emit(stream, rest)

    def _emit(self, stream: str, line: bytes) -> None:
        if self.log is not None:
            self.log(stream, line)
        self.tail.append(line.decode(errors="replace").rstrip("\n"))


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


def _norm(path: str) -> str:
    return "/" + "/".join(p for p in path.split("/") if p and p != ".")


def _depth(path: str) -> tuple[str, ...]:
    return tuple(p for p in _norm(path).split("/") if p)


class _StubPool:
    """Empty directories and files kept in one directory (the executor's state dir) and
    moved (renamed) into a rootfs where a system stub is missing, then back after the
    run: runc creates nothing and nothing is deleted per run. Deletions are what cost on
    the hot path: ext4 without a journal discards a freed block at once and, for a minute
    or more, skips every recently freed inode one by one in each later file creation.
    Another process on the same root may take an entry first: a failed rename just makes
    a new entry."""

    def __init__(self, dir: Path):
        self.dir = dir
        dir.mkdir(exist_ok=True)
        self.dev = os.stat(dir).st_dev
        self._lock = threading.Lock()
        self._free: dict[bool, list[str]] = {True: [], False: []}  # is_dir -> names
        with os.scandir(dir) as it:
            for e in it:
                self._free[e.name.startswith("d-")].append(e.name)

    def take(self, dest: Path, is_dir: bool) -> bool:
        """Move a pooled directory or empty file to dest (absent); False if that failed."""
        for _ in range(3):
            with self._lock:
                name = self._free[is_dir].pop() if self._free[is_dir] else None
            if name is None:
                name = self._make(is_dir)
            try:
                os.rename(self.dir / name, dest)
                return True
            except FileNotFoundError:  # taken by another process: try another
                continue
            except OSError:
                self.give_name(name, is_dir)
                return False
        return False

    def give(self, path: Path, is_dir: bool) -> bool:
        """Move an empty stub back into the pool; False if that failed. Right after runc
        exits, the dying container's mount namespace may still hold a mount on it."""
        name = self._name(is_dir)
        try:
            retry_busy(lambda: os.rename(path, self.dir / name), _BUSY_WAIT)
        except OSError:
            return False
        self.give_name(name, is_dir)
        return True

    def give_name(self, name: str, is_dir: bool) -> None:
        with self._lock:
            self._free[is_dir].append(name)

    def _name(self, is_dir: bool) -> str:
        return ("d-" if is_dir else "f-") + uuid.uuid4().hex[:16]

    def _make(self, is_dir: bool) -> str:
        """A new entry as runc would create it: a directory 0755, an empty file 0644."""
        name = self._name(is_dir)
        path = self.dir / name
        if is_dir:
            os.mkdir(path)
        else:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC))
        os.chmod(path, 0o755 if is_dir else 0o644)
        return name


def _pristine(st: os.stat_result, is_dir: bool) -> bool:
    """Still a stub as the pool made it (owner, mode, type; a file still empty)."""
    if (st.st_uid, st.st_gid) != (os.geteuid(), os.getegid()):
        return False
    if is_dir:
        return stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o755
    return stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o644 and st.st_size == 0


class _Stubs:
    """Records which mount points and stub files are missing before a run (in whichever
    host directory backs their parent: the rootfs or an enclosing writable bind mount) and
    removes the ones runc created afterwards: only empty directories and empty files.
    A missing system stub whose directory exists on the pool's filesystem is put in place
    from the pool instead (see _StubPool) and goes back there afterwards.

    The existing directory above each missing path (its "anchor") gets its atime and mtime
    back when its entries are the same as before the run, so a run that only needed stubs
    leaves the tree exactly as it found it (BuildKit #3148 restores times the same way)."""

    def __init__(self, rootfs: Path, binds: list[BindMount], pool: _StubPool | None = None,
                 poolable: set[str] = frozenset()):
        self._layers = [((), rootfs)] + [(_depth(b.dest), b.source) for b in binds
                                          if not b.readonly and b.source.is_dir()]
        self._rootfs = rootfs
        self._pool = pool
        self._poolable = poolable  # system stubs (normalised dests) the pool may provide
        self._paths: dict[Path, Path] = {}  # stub -> the host directory it lives under
        self._pooled: dict[Path, bool] = {}  # stub from the pool -> is a directory
        self._anchors: dict[Path, tuple[Path, set[str], int, int]] = {}

    def _host_path(self, dest: str) -> tuple[Path, tuple[str, ...]] | None:
        """The host directory holding dest's mount point (the innermost mount strictly
        above dest) and dest's path relative to it."""
        parts = _depth(dest)
        best = None
        for prefix, host in self._layers:
            if len(prefix) < len(parts) and parts[:len(prefix)] == prefix:
                if best is None or len(prefix) >= len(best[0]):
                    best = (prefix, host)
        if best is None:
            return None
        return best[1], parts[len(best[0]):]

    def record(self, dests: list[str]) -> None:
        """Note every missing path among dests and their parents (resolved like runc does,
        symlinks followed inside the root)."""
        for dest in dests:
            found = self._host_path(dest)
            if found is None:
                continue
            host, rel = found
            for i in range(len(rel), 0, -1):
                try:
                    p = resolve_in_root(host, "/".join(rel[:i]))
                except LLBError:
                    break
                if os.path.lexists(p):
                    break
                if p not in self._paths:
                    self._paths[p] = host
                    self._anchor(host, p.parent)
                    if i == len(rel) and dest in self._poolable and host == self._rootfs:
                        self._from_pool(p, dest not in _FILE_STUBS)

    def _from_pool(self, p: Path, is_dir: bool) -> None:
        """Put a pooled stub at p when its directory is a real one on the pool's device."""
        if self._pool is None or p.parent not in self._anchors:
            return
        try:
            if os.lstat(p.parent).st_dev != self._pool.dev:
                return
        except OSError:
            return
        if self._pool.take(p, is_dir):
            self._pooled[p] = is_dir

    def _anchor(self, host: Path, d: Path) -> None:
        if d in self._anchors or not os.path.isdir(d) or os.path.islink(d):
            return
        try:
            st = os.lstat(d)
            self._anchors[d] = (host, set(os.listdir(d)), st.st_atime_ns, st.st_mtime_ns)
        except OSError:
            pass

    def clean(self) -> None:
        """Remove the recorded paths that are now empty stubs, deepest first; then give
        untouched anchors their times back. A path whose parents the process replaced
        with a symlink is left alone (it would lead outside the root: BuildKit #4603)."""
        for p in sorted(self._paths, key=lambda x: len(x.parts), reverse=True):
            try:
                if not _unmoved(self._paths[p], p):
                    continue
                st = os.lstat(p)
                if p in self._pooled and _pristine(st, self._pooled[p]) and \
                        self._give_back(p, st):
                    continue
                if stat.S_ISDIR(st.st_mode):
                    with os.scandir(p) as it:
                        if any(True for _ in it):
                            continue
                elif not stat.S_ISREG(st.st_mode) or st.st_size != 0:
                    continue
                pst = os.lstat(p.parent)
                remove = os.rmdir if stat.S_ISDIR(st.st_mode) else os.unlink
                # right after runc exits, the dying container's mount namespace may still
                # hold mounts on the stub (released within milliseconds)
                retry_busy(lambda: remove(p), _BUSY_WAIT)
                os.utime(p.parent, ns=(pst.st_atime_ns, pst.st_mtime_ns),
                         follow_symlinks=False)
            except OSError:
                continue
        for d, (host, names, atime, mtime) in self._anchors.items():
            try:
                if _unmoved(host, d) and set(os.listdir(d)) == names:
                    os.utime(d, ns=(atime, mtime), follow_symlinks=False)
            except OSError:
                continue

    def _give_back(self, p: Path, st: os.stat_result) -> bool:
        """Return a pooled stub (a directory only when empty); True when it is gone from p."""
        if stat.S_ISDIR(st.st_mode):
            with os.scandir(p) as it:
                if any(True for _ in it):
                    return False
        return self._pool.give(p, self._pooled[p])


def _unmoved(host: Path, path: Path) -> bool:
    """Whether path still resolves to itself inside host: no component between them has
    become a symlink (which would make host-side operations on path leave the root)."""
    try:
        rel = os.path.relpath(path, host)
        return rel != ".." and not rel.startswith("../") and \
            resolve_in_root(host, rel, follow_final=False) == path
    except (LLBError, ValueError, OSError):
        return False


