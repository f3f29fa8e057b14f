"""Mounting overlay filesystems: the mount(2) syscall through libc (options relative to a
base directory, so long layer chains fit in the kernel's one-page option limit), unmount,
and discovery of stale mounts left by a killed process.

A writable overlay is mounted `volatile` (Linux 5.10+; dropped where the kernel refuses
it): otherwise overlayfs syncs the whole upper filesystem (every dirty page and inode of
the host filesystem, then a device flush) when the mount goes away, which cost 3-5 ms per
exec here and I/O for every other writer. llb never fsyncs its own writes: it promises a
consistent root after a killed process, not after a power loss, which volatile keeps. A
volatile upper's work directory cannot be mounted again (the kernel leaves
`work/incompat/volatile` in it); llb gives every mount a fresh one."""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable

from llb.fsutil import remove_tree
from llb.errors import is_no_space
from llb.snapshot.errors import SnapshotError

_MS_RDONLY = 1
_MNT_DETACH = 2
_BUSY_RETRY = 2.0  # seconds a non-lazy unmount retries EBUSY (see unmount)
OPTION_LIMIT = 4000  # the kernel copies at most one page (4096) of mount data


def overlay_options(lowers: list[str], upper: str | None = None, work: str | None = None,
                    *, volatile: bool = False) -> str:
    """The option string for an overlay of `lowers` (top first), paths relative to the base."""
    opts = "lowerdir=" + ":".join(lowers)
    if upper is not None:
        opts += f",upperdir={upper},workdir={work}" + (",volatile" if volatile else "")
    return opts + ",index=off,metacopy=off,redirect_dir=off"


# The new mount API (fsopen/fsconfig/fsmount/move_mount, x86_64 and aarch64 numbers): one
# fsconfig call per layer ("lowerdir+", Linux 6.8+), so no option-size limit and no exec.
_SYS = {"fsopen": 430, "fsconfig": 431, "fsmount": 432, "move_mount": 429}
_FSCONFIG_SET_FLAG, _FSCONFIG_SET_STRING, _FSCONFIG_CMD_CREATE = 0, 1, 6
_MOUNT_ATTR_RDONLY, _MOVE_MOUNT_F_EMPTY_PATH, _AT_FDCWD = 1, 4, -100
_new_api: bool | None = None  # unknown until tried
_volatile = True  # until the kernel refuses it


def _sys(name: str, *args: object) -> int:
    from llb.snapshot import libc  # ctypes: a mount's cost, not every command's

    return libc.syscall(_SYS[name], *args)


def _uint(value: int) -> object:
    from llb.snapshot import libc

    return libc.uint(value)


def _mount_new_api(target: str | os.PathLike[str], params: list[tuple[str, str]],
                   readonly: bool, flags: list[str]) -> None:
    global _volatile
    fs = _sys("fsopen", b"overlay", _uint(1))
    try:
        for key, value in params:
            _sys("fsconfig", fs, _uint(_FSCONFIG_SET_STRING), key.encode(),
                 os.fsencode(value), 0)
        for flag in flags:
            try:
                _sys("fsconfig", fs, _uint(_FSCONFIG_SET_FLAG), flag.encode(), None, 0)
            except OSError:  # an older kernel: mount without it
                if flag == "volatile":
                    _volatile = False
        _sys("fsconfig", fs, _uint(_FSCONFIG_CMD_CREATE), None, None, 0)
        mnt = _sys("fsmount", fs, _uint(1), _uint(_MOUNT_ATTR_RDONLY if readonly else 0))
    finally:
        os.close(fs)
    try:
        _sys("move_mount", mnt, b"", _AT_FDCWD, os.fsencode(target),
             _uint(_MOVE_MOUNT_F_EMPTY_PATH))
    finally:
        os.close(mnt)


def mount_overlay(target: str | os.PathLike[str], base: str | os.PathLike[str], lowers: list[str],
                  upper: str | None = None, work: str | None = None) -> None:
    """Mount an overlay at target; layer paths are relative to base. Uses the new mount
    API where the kernel has it, else mount(8) run with base as its working directory
    (so no thread's cwd ever changes)."""
    global _new_api
    api_error: OSError | None = None
    if _new_api is not False:
        params = [("lowerdir+", os.path.join(base, low)) for low in lowers]
        if upper is not None:
            if work is None:
                raise ValueError("an overlay with an upper dir needs a work dir")
            params += [("upperdir", os.path.join(base, upper)), ("workdir", os.path.join(base, work))]
        params += [("index", "off"), ("metacopy", "off"), ("redirect_dir", "off")]
        flags = ["volatile"] if upper is not None and _volatile else []
        try:
            _mount_new_api(target, params, readonly=upper is None, flags=flags)
            _new_api = True
            return
        except OSError as e:
            if _new_api:
                if is_no_space(e):  # a full disk: the caller names the root
                    raise
                raise SnapshotError(f"overlay mount failed: {e.strerror}", path=str(target))
            api_error = e
    _mount8(target, base, lowers, upper, work)
    if api_error is not None:
        _new_api = False  # mount(8) works where the new API did not: use it from now on


def _mount8(target: str | os.PathLike[str], base: str | os.PathLike[str], lowers: list[str],
            upper: str | None, work: str | None) -> None:
    global _volatile
    import subprocess  # the fallback only: not a start-up cost

    def run(volatile: bool) -> subprocess.CompletedProcess:
        opts = overlay_options(lowers, upper, work, volatile=volatile)
        if len(opts) > OPTION_LIMIT:
            raise SnapshotError(f"overlay mount options too long ({len(opts)} bytes)")
        ro = ["-r"] if upper is None else []
        args = ["mount", "-t", "overlay", "overlay", *ro, "-o", opts, str(target)]
        return subprocess.run(args, cwd=base, capture_output=True, text=True)

    volatile = upper is not None and _volatile
    proc = run(volatile)
    if proc.returncode != 0 and volatile:
        proc = run(False)  # perhaps a kernel without volatile (before 5.10)
        if proc.returncode == 0:
            _volatile = False
    if proc.returncode != 0:
        raise SnapshotError(f"overlay mount failed: {proc.stderr.strip() or proc.returncode}",
                            path=str(target))


def unmount(target: str | os.PathLike[str], *, lazy: bool = True) -> None:
    """umount2(target). Lazy (MNT_DETACH, the default) does not wait for an RCU grace
    period, which costs milliseconds per mount; writes are already in the upperdir.
    A non-lazy unmount retries EBUSY for a while: a child another thread just forked
    (runc, mount(8)) holds copies of this process's fds, some perhaps inside target,
    until it execs."""
    from llb.snapshot import libc  # ctypes: an unmount's cost, not every command's

    def umount2() -> None:
        libc.umount2(os.fsencode(target), _MNT_DETACH if lazy else 0)

    try:
        retry_busy(umount2, 0.0 if lazy else _BUSY_RETRY, first_delay=0.001)
    except OSError as e:
        raise SnapshotError(f"unmount failed: {e.strerror}", path=str(target)) from None


def retry_busy(call: Callable[[], None], seconds: float, *, first_delay: float = 0.0005) -> None:
    """call(), retried with exponential backoff (up to 50 ms apart) while it raises EBUSY,
    for at most `seconds`; a mount or a dying mount namespace lets go within milliseconds."""
    deadline = time.monotonic() + seconds
    delay = first_delay
    while True:
        try:
            call()
            return
        except OSError as e:
            if e.errno != errno.EBUSY or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def mounts_under(prefix: str | os.PathLike[str]) -> list[str]:
    """Mount points at or below prefix (deepest first), from /proc/self/mountinfo."""
    pre = os.fspath(prefix).rstrip("/") + "/"
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4]
            if "\\" in point:  # octal escapes (\040 for a space): the codec only then
                point = point.encode().decode("unicode_escape")
            if point.startswith(pre) or point == pre[:-1]:
                found.append(point)
    return sorted(found, key=lambda p: p.count("/"), reverse=True)


def overlay_works(scratch: str | os.PathLike[str]) -> bool:
    """Try a real overlay mount under scratch (what `auto` uses to choose), in directories
    of its own that it removes afterwards: a volatile mount leaves its work directory
    unmountable, so a probe must never find an earlier probe's."""
    from pathlib import Path  # not for a cached solve (pathlib loads re, enum, ...)

    base = Path(scratch) / f"overlay-probe-{os.getpid()}-{time.monotonic_ns()}"
    dirs = [base / n for n in ("l", "u", "w", "m")]
    try:
        try:
            for d in dirs:
                d.mkdir(parents=True)
            mount_overlay(dirs[3], base, ["l"], "u", "w")
        except (SnapshotError, OSError):
            return False
        try:
            unmount(dirs[3])
        except SnapshotError:
            unmount(dirs[3], lazy=True)
        return True
    finally:
        try:
            remove_tree(base)
        except OSError:
            pass  # a probe left behind is harmless (and removed with its session)
