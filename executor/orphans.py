"""Containers of dead llb processes: found, killed and deleted before what they use is reused.

Every container the executor runs has an owner lock, `<run dir>/owners/<container id>`,
flocked by the llb process that runs it from before its bundle is written until its runc
state and bundle are gone. A process that dies without cleaning up (SIGKILL, a crash)
releases the lock while its container may run on, writing into a cache mount or a rootfs
that the next process would reuse or remove. `reap_orphans` kills and deletes every
container whose owner lock is free and removes its bundle; the solver runs it before opening
the snapshot store (which removes a dead session's rootfs mounts) and after taking a cache
mount's lock, `llb prune` and `llb du` before touching anything.

This module is on every command's start-up path: it imports nothing heavy until it finds a
container to reap (a run directory holds nothing but live containers' entries)."""

from __future__ import annotations

import os
from pathlib import Path

from llb.fsutil import remove_tree
from llb.fsutil.locks import lock_file, try_lock, unlock_file

__all__ = ["BUNDLES", "OWNERS", "RUNC_STATE", "RUN_LINK", "OwnerLock", "reap_orphans",
           "run_dirs"]

OWNERS = "owners"
RUNC_STATE = "runc"
BUNDLES = "bundles"
RUN_LINK = "run"  # in the state directory: a symlink to its run directory on a tmpfs


def run_dirs(state_dir: Path) -> list[Path]:
    """Every directory the executor of `state_dir` may have kept runc state and bundles in:
    the state directory itself, and the tmpfs directory its `run` link names (see
    llb.executor.runc)."""
    state = Path(state_dir)
    out = [state] if os.path.isdir(state) else []
    try:
        target = Path(os.readlink(state / RUN_LINK))
    except OSError:
        return out
    if os.path.isdir(target):
        out.append(target)
    return out


class OwnerLock:
    """The flock that says a live process runs container `cid` (see the module docstring)."""

    def __init__(self, run_dir: Path, cid: str):
        self.path = os.path.join(os.fspath(run_dir), OWNERS, cid)
        self._fd: int | None = None

    def acquire(self) -> None:
        """Create and lock the owner file. A reaper that found it free (it unlinks it once
        done) may have replaced it meanwhile: lock until the file at the path is ours."""
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self._fd = lock_file(self.path, mode=0o600)

    def release(self) -> None:
        """Remove the owner file, then unlock: call once the container's bundle is gone."""
        if self._fd is not None:
            unlock_file(self.path, self._fd)
            self._fd = None


def _claim(path: str) -> int | None:
    """Lock a free owner file (fd to close once reaped), or None while its owner lives.
    A missing file counts as free: the owner died before or while creating it."""
    fd = try_lock(path)
    if fd is None and not os.path.lexists(path):
        return -1
    return fd


def _listdir(path: Path) -> list[str]:
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []


def reap_orphans(state_dir: Path) -> list[str]:
    """Kill and delete the containers of dead processes that ran under `state_dir`, remove
    their bundles and owner files; returns their ids. Waits until they are gone."""
    reaped: list[str] = []
    for rd in run_dirs(state_dir):
        ids = set(_listdir(rd / RUNC_STATE)) | set(_listdir(rd / BUNDLES)) | \
            set(_listdir(rd / OWNERS))
        for cid in sorted(ids):
            if not cid.startswith("llb-"):
                continue
            owner = os.path.join(rd, OWNERS, cid)
            fd = _claim(owner)
            if fd is None:
                continue  # its process is alive
            try:
                _remove(rd, cid)
                try:
                    if fd >= 0 and os.fstat(fd).st_ino == os.stat(owner).st_ino:
                        os.unlink(owner)
                except FileNotFoundError:
                    pass
            finally:
                if fd >= 0:
                    os.close(fd)
            reaped.append(cid)
    return reaped


def _remove(rd: Path, cid: str) -> None:
    """Kill the container (every process of it: `delete --force` SIGKILLs its cgroup and
    waits), delete its runc state and cgroup, remove its bundle."""
    import shutil
    import subprocess

    if os.path.exists(rd / RUNC_STATE / cid):
        runc = shutil.which("runc")
        if runc is not None:
            base = [runc, "--root", str(rd / RUNC_STATE)]
            for args in (["kill", cid, "KILL"], ["delete", "--force", cid]):
                subprocess.run(base + args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, check=False, timeout=60)
    try:
        remove_tree(rd / BUNDLES / cid)
    except OSError:
        pass  # a bundle left behind is retried with its run directory
