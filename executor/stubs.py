"""Mount stubs: the mount points and files runc needs in a rootfs (/proc, /dev, /sys,
/etc/hosts, /etc/resolv.conf and every mount's target) that were not there before a run.

`Stubs` records which are missing before the run and afterwards removes the ones runc
created (empty directories and empty files only), so a diff of the rootfs holds only what
the process changed; missing system stubs come from a `StubPool` instead where they can,
renamed in before the run and back after it, so nothing is created or deleted per run."""

from __future__ import annotations

import os
import stat
import threading
import uuid
from collections.abc import Set as AbstractSet
from pathlib import Path

from llb.errors import LLBError
from llb.fsutil import set_times
from llb.snapshot.mount import retry_busy
from llb.snapshot.paths import resolve_in_root

__all__ = ["FILE_STUBS", "SYSTEM_STUBS", "StubPool", "Stubs", "dest_parts", "norm_dest"]

# Paths runc (or we) create in every rootfs; removed after the run when they were absent.
SYSTEM_STUBS = ("/proc", "/dev", "/sys", "/etc/hosts", "/etc/resolv.conf")
FILE_STUBS = ("/etc/hosts", "/etc/resolv.conf")  # bind-mounted files; the rest directories
_BUSY_WAIT = 2.0  # seconds to wait for a dying mount namespace to let go of a stub


def norm_dest(path: str) -> str:
    """A mount destination as "/a/b" (no empty, "." or trailing components)."""
    return "/" + "/".join(p for p in path.split("/") if p and p != ".")


def dest_parts(path: str) -> tuple[str, ...]:
    """A mount destination's components ("/a/b" -> ("a", "b")): sorts parents first."""
    return tuple(p for p in norm_dest(path).split("/") if p)


class StubPool:
    """Empty directories and files kept in one directory (the executor's state dir) and
    moved (renamed) into a rootfs where a system stub is missing, then back after the
    run: runc creates nothing and nothing is deleted per run. Deletions are what cost on
    the hot path: ext4 without a journal discards a freed block at once and, for a minute
    or more, skips every recently freed inode one by one in each later file creation.
    Another process on the same root may take an entry first: a failed rename just makes
    a new entry."""

    def __init__(self, path: Path):
        self.dir = path
        path.mkdir(exist_ok=True)
        self.dev = os.stat(path).st_dev
        self._lock = threading.Lock()
        self._free: dict[bool, list[str]] = {True: [], False: []}  # is_dir -> names
        with os.scandir(path) as it:
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


class Stubs:
    """Records which mount points and stub files are missing before a run (in whichever
    host directory backs their parent: the rootfs or an enclosing writable bind mount) and
    removes the ones runc created afterwards: only empty directories and empty files.
    A missing system stub whose directory exists on the pool's filesystem is put in place
    from the pool instead (see StubPool) and goes back there afterwards.

    The existing directory above each missing path (its "anchor") gets its atime and mtime
    back when its entries are the same as before the run, so a run that only needed stubs
    leaves the tree exactly as it found it (BuildKit #3148 restores times the same way)."""

    def __init__(self, rootfs: Path, binds: list, pool: StubPool | None = None,
                 poolable: AbstractSet[str] = frozenset()):
        self._layers = [((), rootfs)] + [(dest_parts(b.dest), b.source) for b in binds
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
        parts = dest_parts(dest)
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
                        self._from_pool(p, dest not in FILE_STUBS)

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
                set_times(str(p.parent), pst.st_mtime_ns, pst.st_atime_ns)
            except OSError:
                continue
        for d, (host, names, atime, mtime) in self._anchors.items():
            try:
                if _unmoved(host, d) and set(os.listdir(d)) == names:
                    set_times(str(d), mtime, atime)
            except OSError:
                continue

    def _give_back(self, p: Path, st: os.stat_result) -> bool:
        """Return a pooled stub (a directory only when empty); True when it is gone from p."""
        if stat.S_ISDIR(st.st_mode):
            with os.scandir(p) as it:
                if any(True for _ in it):
                    return False
        pool = self._pool
        if pool is None:
            return False
        return pool.give(p, self._pooled[p])


def _unmoved(host: Path, path: Path) -> bool:
    """Whether path still resolves to itself inside host: no component between them has
    become a symlink (which would make host-side operations on path leave the root)."""
    try:
        rel = os.path.relpath(path, host)
        return rel != ".." and not rel.startswith("../") and \
            resolve_in_root(host, rel, follow_final=False) == path
    except (LLBError, ValueError, OSError):
        return False


