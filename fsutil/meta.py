"""An entry's metadata and how to give it to a path or an open file: owner, permission bits
(set-id and sticky included), xattrs and nanosecond times, in the one order that keeps them
all (chown clears set-id bits and file capabilities; the chmod and the xattrs that follow
restore them; times go last, as every other write moves them).

This is the seam for anything that writes entries it did not copy from a tree (a layer
tar being unpacked, a FileOp overriding owner or mode): build a `Meta`, create the entry,
`apply_meta` it."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping

from llb.fsutil.policy import owner_refused, setid_refused
from llb.fsutil.xattrs import Target, read_xattrs, write_xattrs
from llb.records import Record, Valued


class Meta(Valued):
    """What apply_meta gives an entry. mode: st_mode (type bits tell a symlink, whose
    permission bits are never set); times in ns, atime None meaning mtime's, mtime None
    leaving both alone; xattrs: name -> value (overlayfs' private ones are never set).
    Frozen, compared and shown as a frozen dataclass would be (written out, not made by
    @dataclass, which compiled them at every `llb` command's start)."""

    __slots__ = ("mode", "uid", "gid", "mtime_ns", "atime_ns", "xattrs")
    __match_args__ = ("mode", "uid", "gid", "mtime_ns", "atime_ns", "xattrs")
    mode: int
    uid: int
    gid: int
    mtime_ns: int | None
    atime_ns: int | None
    xattrs: Mapping[str, bytes]

    def __init__(self, mode: int, uid: int = 0, gid: int = 0, mtime_ns: int | None = None,
                 atime_ns: int | None = None, xattrs: Mapping[str, bytes] | None = None
                 ) -> None:
        _set = object.__setattr__
        _set(self, "mode", mode)
        _set(self, "uid", uid)
        _set(self, "gid", gid)
        _set(self, "mtime_ns", mtime_ns)
        _set(self, "atime_ns", atime_ns)
        _set(self, "xattrs", {} if xattrs is None else xattrs)

    def _values(self) -> tuple[object, ...]:
        return self.mode, self.uid, self.gid, self.mtime_ns, self.atime_ns, self.xattrs

    def __repr__(self) -> str:
        return (f"Meta(mode={self.mode!r}, uid={self.uid!r}, gid={self.gid!r}, "
                f"mtime_ns={self.mtime_ns!r}, atime_ns={self.atime_ns!r}, "
                f"xattrs={self.xattrs!r})")

    def __reduce__(self) -> tuple[type[Meta], tuple[object, ...]]:
        return Meta, self._values()

    @classmethod
    def of(cls, st: os.stat_result, xattrs: Mapping[str, bytes] | None = None) -> Meta:
        """The metadata an lstat shows (plus the entry's xattrs, when given)."""
        return cls(st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, st.st_atime_ns,
                   xattrs if xattrs is not None else {})


class Creds(Record):
    """Who this process creates entries as: a new entry's owner and the umask applied to
    the permission bits it is created with (in a directory that is not set-group-ID, or
    has our group)."""

    uid: int
    gid: int
    umask: int

    def created(self, perm: int) -> tuple[int, int, int]:
        """(uid, gid, permission bits) of an entry just created with mode perm."""
        return self.uid, self.gid, perm & 0o777 & ~self.umask


def umask() -> int:
    """The process umask, read without changing it (os.umask would race with threads that
    create files meanwhile); /proc/self/status has it since Linux 4.7."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def creds() -> Creds:
    """This process's Creds, read now (the umask may have changed since start-up)."""
    return Creds(os.geteuid(), os.getegid(), umask())


def apply_meta(target: Target, meta: Meta, *, dir_fd: int | None = None,
               have: tuple[int, int, int] | None = None, times: bool = True) -> None:
    """Give target (a path, never followed, relative to dir_fd when given; or an open fd)
    meta's owner, permission bits, xattrs and (with times) times. have: the (uid, gid,
    permission bits) target is known to have already, e.g. Creds.created(perm) for an
    entry just made: calls that would change nothing are left out. A non-root process
    keeps its own owner where chown is refused (fsutil.policy)."""
    perm = stat.S_IMODE(meta.mode)
    chowned = False
    if have is None or have[0] != meta.uid or have[1] != meta.gid:
        try:
            if isinstance(target, int):
                os.fchown(target, meta.uid, meta.gid)
            else:
                os.chown(target, meta.uid, meta.gid, dir_fd=dir_fd, follow_symlinks=False)
            chowned = True
        except OSError as e:
            if not owner_refused(e):
                raise
    if not stat.S_ISLNK(meta.mode) and (
            have is None or have[2] != perm or (chowned and perm & 0o6000)):
        _chmod(target, perm, dir_fd)
    if meta.xattrs:
        write_xattrs(target, meta.xattrs, dir_fd=dir_fd)
    if times and meta.mtime_ns is not None:
        set_times(target, meta.mtime_ns, meta.atime_ns, dir_fd=dir_fd)


def _chmod(target: Target, perm: int, dir_fd: int | None) -> None:
    try:
        os.chmod(target, perm, dir_fd=None if isinstance(target, int) else dir_fd)
    except OSError as e:
        if not (perm & 0o6000 and setid_refused(e)):
            raise
        os.chmod(target, perm & 0o1777, dir_fd=None if isinstance(target, int) else dir_fd)


def set_times(target: Target, mtime_ns: int, atime_ns: int | None = None, *,
              dir_fd: int | None = None) -> None:
    """Set target's mtime (and atime: mtime's when None), in ns, never following it."""
    ns = (mtime_ns if atime_ns is None else atime_ns, mtime_ns)
    if isinstance(target, int):
        os.utime(target, ns=ns)
    else:
        os.utime(target, ns=ns, dir_fd=dir_fd, follow_symlinks=False)


def copy_meta(src: str, dst: Target, st: os.stat_result | None = None, *,
              dst_dir_fd: int | None = None, times: bool = True,
              have: tuple[int, int, int] | None = None) -> None:
    """Give dst the metadata of the entry at src (st: its lstat, when the caller has it)."""
    if st is None:
        st = os.lstat(src)
    apply_meta(dst, Meta.of(st, read_xattrs(src)), dir_fd=dst_dir_fd, have=have, times=times)
