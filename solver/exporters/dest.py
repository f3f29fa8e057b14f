"""Where exporters write: proving a destination writable before anything is solved (leaving
nothing behind), and writing a file destination so a failed export leaves no half file.

A file destination is followed as buildctl follows it (it opens dest with os.Create): a
FIFO, a device or anything else that is not a regular file is written through, never
replaced (a reader of a FIFO gets the stream; `dest=/dev/stdout` writes to stdout); a
symlink is followed, and when it leads to a regular file, that file gets the content. A
regular file (reached directly or through symlinks) is replaced by a temporary written
beside it and renamed over it, so a failed export leaves it as it was; it keeps its mode
(and owner, where allowed) as buildctl's truncate-and-write would. A new file is created
with mode 0666 less the umask, like any file a user's tool writes."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable

from llb.errors import LLBError, NoSpaceError, is_no_space
from llb.paths import lexical
from llb.solver.errors import ExportError, OutputSpecError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from pathlib import Path
    from typing import BinaryIO


def write_error(e: OSError, dest: str | Path, what: str, path: str | None = None) -> LLBError:
    """The error of a destination that failed to take a write: NoSpaceError when its
    filesystem is full, else an ExportError "{what}: {reason}" naming path (default dest)."""
    if is_no_space(e):
        return NoSpaceError.on("destination", dest)
    return ExportError(f"{what}: {e.strerror or e}", path=path or str(dest))


def check_dir_dest(dest: str) -> None:
    """Prove dest can be a directory we write into: create what is missing, create and remove
    a probe file, then remove what was created (nothing is left behind either way)."""
    p = lexical(dest)  # and its parents as pathlib's: a cached solve loads no pathlib
    if os.path.exists(p) and not os.path.isdir(p):
        raise OutputSpecError(f"--output dest={dest}: exists and is not a directory", path=dest)
    missing: list[str] = []
    probe = p
    while not os.path.exists(probe) and probe != _parent(probe):
        missing.append(probe)
        probe = _parent(probe)
    if not os.path.isdir(probe):
        raise OutputSpecError(f"--output dest={dest}: cannot write there ({probe} is not a directory)",
                              path=dest)
    created: list[str] = []
    try:
        for d in reversed(missing):
            os.mkdir(d)
            created.append(d)
        _probe_file(os.path.join(p, f".llb-probe-{os.getpid()}"))
    except OSError as e:
        if is_no_space(e):
            raise NoSpaceError.on("destination", dest) from None
        raise OutputSpecError(f"--output dest={dest}: cannot write there ({e.strerror})",
                              path=dest) from None
    finally:
        for d in reversed(created):
            try:
                os.rmdir(d)
            except OSError:
                pass


def _parent(path: str) -> str:
    """A lexical path's parent, as pathlib's `.parent` ("/" and "." are their own)."""
    return os.path.dirname(path) or "."


def check_file_dest(dest: str) -> None:
    """Prove dest can be written as a file: an existing regular file is opened for writing
    (not truncated); anything else that exists must be writable (a FIFO is never opened: a
    reader would see the end of its stream); a new file is created and removed."""
    from pathlib import Path  # a file output's: not for a cached solve's directory one

    p = Path(dest)
    if p.is_dir():
        raise OutputSpecError(f"--output dest={dest}: is a directory", path=dest)
    try:
        st: os.stat_result | None = os.stat(p)
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise OutputSpecError(f"--output dest={dest}: cannot write there ({e.strerror})",
                              path=dest) from None
    try:
        if st is None:
            target = _new_file_path(p)
            if not target.parent.is_dir():
                raise OutputSpecError(f"--output dest={dest}: directory {target.parent} does "
                                      f"not exist", path=dest)
            _probe_file(target)
        elif stat.S_ISREG(st.st_mode):
            os.close(os.open(p, os.O_WRONLY | os.O_CLOEXEC))
        elif not os.access(p, os.W_OK):
            raise OSError(errno.EACCES, os.strerror(errno.EACCES))
    except OSError as e:
        if is_no_space(e):
            raise NoSpaceError.on("destination", dest) from None
        raise OutputSpecError(f"--output dest={dest}: cannot write there ({e.strerror})",
                              path=dest) from None


def write_file_dest(dest: Path, write: Callable[[BinaryIO], object]) -> None:
    """Run write(f) for the file destination dest: straight into it when it is not a
    regular file (a FIFO, a device, /dev/stdout), else on a temporary beside the regular
    file it is or leads to, renamed over that file (a failure leaves it as it was).
    ExportError when it cannot be written (a FIFO's reader gone), NoSpaceError when its
    filesystem is full."""
    try:
        _write_file_dest(dest, write)
    except BrokenPipeError:
        raise ExportError(f"{dest}: the reader closed it before the output was written",
                          path=str(dest)) from None
    except OSError as e:
        raise write_error(e, dest, f"cannot write {dest}") from None


def _write_file_dest(dest: Path, write: Callable[[BinaryIO], object]) -> None:
    try:
        st: os.stat_result | None = os.stat(dest)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        with open(dest, "wb") as f:
            write(f)
        return
    target = _regular_target(dest, st)
    if target is None:  # a path the kernel resolves but that names no file of ours
        with open(dest, "wb") as f:
            write(f)
        return
    tmp = target.with_name(f".{target.name}.llb-tmp-{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    except OSError as e:
        if st is None or e.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        with open(dest, "wb") as f:  # a writable file in a directory we cannot write
            write(f)
        return
    try:
        with os.fdopen(fd, "wb") as f:
            if st is not None:
                _keep_owner_and_mode(f.fileno(), st)
            write(f)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _regular_target(dest: Path, st: os.stat_result | None) -> Path | None:
    """The path of the regular file dest is or leads to (to be replaced by a rename), or
    where a new one is created (a dangling symlink's target); None when the path that
    symlinks resolve to is not that file (a /proc magic link)."""
    if st is None:
        return _new_file_path(dest)
    if not os.path.islink(dest):
        return dest
    from pathlib import Path  # a file output's: not for a cached solve's directory one

    real = Path(os.path.realpath(dest))
    try:
        rst = os.lstat(real)
    except OSError:
        return None
    if (rst.st_dev, rst.st_ino) != (st.st_dev, st.st_ino):
        return None
    return real


def _new_file_path(dest: Path) -> Path:
    """Where a file that does not exist yet is created: dest, or the target of the dangling
    symlink(s) it is."""
    from pathlib import Path  # a file output's: not for a cached solve's directory one

    return Path(os.path.realpath(dest)) if os.path.islink(dest) else dest


def _keep_owner_and_mode(fd: int, st: os.stat_result) -> None:
    """Give the replacement of a regular file that file's owner (when allowed) and mode."""
    if (st.st_uid, st.st_gid) != (os.geteuid(), os.getegid()):
        try:
            os.fchown(fd, st.st_uid, st.st_gid)
        except PermissionError:
            pass
    os.fchmod(fd, stat.S_IMODE(st.st_mode))


def _probe_file(path: str | os.PathLike[str]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    os.close(fd)
    os.unlink(path)
