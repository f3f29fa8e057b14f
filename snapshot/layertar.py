"""Unpacking an OCI/Docker layer blob onto a tree: the tar (gzip, zstd or uncompressed) is
applied entry by entry on the tree of the layer below, as containerd's applier does, so the
snapshot committed from it records the same diff a built layer with that effect records.

Whiteouts: `DIR/.wh.NAME` removes NAME as the layers below had it; `DIR/.wh..wh..opq`
removes everything the layers below had in DIR. Neither touches what this layer itself
writes (image-spec: a whiteout applies to lower layers only), whatever their order in the
tar. Other `.wh..wh.*` names (aufs bookkeeping) are skipped.

The tar is hostile until applied: entry names are cleaned and must stay inside (no `..`,
not absolute), parent directories are resolved inside the tree (a relative symlink inside
it is followed; one leading outside is an error, never followed), the last component is
never followed, hardlink targets must be existing non-directories inside, duplicate entries
and unknown entry types are refused, a 0/0 character device (an overlay whiteout) is refused,
overlayfs' private xattrs are never set. Device nodes are created when the process may (as
root) and skipped otherwise (containerd in a user namespace). Everything is written through
new inodes (a file is unlinked, never opened for writing), which is what a trusted mutable
promises. Any problem is a LayerError naming the blob and the entry; the caller discards
the tree."""

from __future__ import annotations

import os
import stat
import tarfile
import threading
import zlib
from pathlib import Path
from typing import cast

import zstandard
from isal import isal_zlib

from llb.fsutil import Meta, apply_meta, lstat_or_none, remove_tree, write_xattrs
from llb.snapshot.blobs import Reader
from llb.snapshot.compression import Pipe, kind_of
from llb.snapshot.errors import LayerError
from llb.snapshot.tarread import Entry, TarReader

_CHUNK = 1 << 20
_WH = ".wh."
_WH_META = ".wh..wh."
_OPAQUE = ".wh..wh..opq"
_MAX_LINKS = 40
_SKIP_XATTRS = ("trusted.overlay.", "user.overlay.")
# what bad data raises while it is decompressed and parsed
_DATA_ERRORS: tuple[type[BaseException], ...] = (
    tarfile.TarError, EOFError, zlib.error, cast(type[BaseException], isal_zlib.error),
    zstandard.ZstdError, ValueError, OverflowError, UnicodeError)
_O_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def unpack_layer(raw: Reader, dest: Path, *, media_type: str, diff_id: str | None,
                 what: str, cancelled: threading.Event | None = None) -> None:
    """Apply the layer blob read from `raw` (compressed as media_type says) onto the tree at
    dest. diff_id: the sha256 the uncompressed tar must have (rootfs.diff_ids). `raw` is
    read to its end (a verifying reader checks the blob's own digest there). Decompressing
    and hashing run in a thread of their own while the entries are written."""
    pipe = Pipe(raw, kind_of(media_type), what)
    try:
        reader = TarReader(pipe, what)
        _Applier(str(dest), what, cancelled).run(reader)
        reader.rest()
        got = pipe.diff_id()
    except LayerError:
        raise
    except _DATA_ERRORS as e:
        raise LayerError(f"{what}: truncated or corrupt layer ({_reason(e)})") from None
    except OSError as e:
        if e.errno is None:  # gzip's BadGzipFile and the like: bad data, not a bad disk
            raise LayerError(f"{what}: truncated or corrupt layer ({_reason(e)})") from None
        raise
    finally:
        pipe.close()
    if diff_id is not None and got != diff_id:
        raise LayerError(f"{what}: the layer's tar is {got}, but the image config's "
                         f"rootfs.diff_ids says {diff_id} (corrupt or forged)")


def _reason(e: BaseException) -> str:
    text = str(e).split("\n")[0] or type(e).__name__
    return text[:200]


class _Applier:
    """State of one layer being applied onto the tree at root (paths below are relative to
    root, as resolved in the tree)."""

    def __init__(self, root: str, what: str, cancelled: threading.Event | None):
        self.root = root
        self.what = what
        self.cancelled = cancelled
        self.explicit: set[str] = set()    # entries of the tar written (real paths)
        self.written: set[str] = set()     # those and the directories made for them
        self.ancestors: set[str] = set()   # directories above any of them
        self.resolved: dict[str, str] = {}  # tar directory -> real directory (verified)
        self.dir_meta: dict[str, tuple[int, int, int]] = {}  # dir -> mode, atime, mtime
        self.names: set[str] = set()       # cleaned entry names seen (duplicates)
        self.may_mknod = os.geteuid() == 0

    # ------------------------------------------------------------------ the loop

    def run(self, tar: TarReader) -> None:
        n = 0
        while True:
            member = tar.next()
            if member is None:
                break
            n += 1
            if self.cancelled is not None and n % 256 == 0 and self.cancelled.is_set():
                raise LayerError(f"{self.what}: cancelled")
            self._entry(tar, member)
        self._finish()

    def fail(self, name: str, why: str) -> LayerError:
        return LayerError(f"{self.what}: entry {name[:200]!r}: {why}", path=name)

    def _entry(self, tar: TarReader, m: Entry) -> None:
        name = m.name
        parts = self._clean(name, name)
        if not parts:
            return  # the root itself ("./"): its metadata is no part of a diff
        rel = "/".join(parts)
        if rel in self.names:
            raise self.fail(name, "appears twice in the layer")
        self.names.add(rel)
        base = parts[-1]
        if base.startswith(_WH):
            self._whiteout(name, parts)
            return
        parent = self._parent(name, parts[:-1], create=True)
        assert parent is not None
        path = f"{parent}/{base}" if parent else base
        if path in self.explicit:
            raise self.fail(name, f"writes {path}, which another entry of the layer wrote")
        if m.isdir():
            self._dir(m, path)
        elif m.isreg():
            self._file(tar, m, path)
        elif m.issym():
            self._replace(path)
            os.symlink(m.linkname, self._abs(path))
            self._meta(self._abs(path), m, symlink=True)
        elif m.islnk():
            self._hardlink(m, path)
        elif m.ischr() or m.isblk():
            if m.ischr() and m.devmajor == 0 and m.devminor == 0:
                raise self.fail(name, "is a 0/0 character device (an overlay whiteout, not an "
                                "OCI one)")
            if not self.may_mknod:
                return  # not root: device nodes are skipped, as containerd does rootless
            self._replace(path)
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
            os.mknod(self._abs(path), kind | 0o600, os.makedev(m.devmajor, m.devminor))
            self._meta(self._abs(path), m)
        elif m.isfifo():
            self._replace(path)
            os.mkfifo(self._abs(path), 0o600)
            self._meta(self._abs(path), m)
        else:
            raise self.fail(name, f"has an unsupported entry type {m.type.decode('latin-1')!r}")
        self.explicit.add(path)
        self._wrote(path)

    # ------------------------------------------------------------------ names and paths

    def _clean(self, name: str, entry: str) -> list[str]:
        """The components of a tar name; LayerError for an absolute name or one with `..`."""
        if name.startswith("/"):
            raise self.fail(entry, f"{name[:200]!r} is an absolute path")
        parts = [p for p in name.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise self.fail(entry, f"{name[:200]!r} has a '..' component")
        if any("\0" in p for p in parts):
            raise self.fail(entry, "has a NUL byte in its name")
        return parts

    def _abs(self, rel: str) -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def _parent(self, entry: str, parts: list[str], *, create: bool) -> str | None:
        """The real directory (relative to root) the components `parts` name, relative
        symlinks inside the tree followed; missing directories created (create) or None.
        LayerError when the way leads through a non-directory or outside the tree."""
        key = "/".join(parts)
        known = self.resolved.get(key)
        if known is not None:
            return known
        pending = list(reversed(parts))
        cur: list[str] = []
        links = 0
        while pending:
            comp = pending.pop()
            if comp == "..":
                if not cur:
                    raise self.fail(entry, "goes through a symlink that leads outside the "
                                    "layer's root")
                cur.pop()
                continue
            rel = "/".join(cur + [comp])
            p = self._abs(rel)
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                if not create:
                    return None
                os.mkdir(p, 0o755)
                self._wrote(rel)
                cur.append(comp)
                continue
            if stat.S_ISDIR(st.st_mode):
                cur.append(comp)
            elif stat.S_ISLNK(st.st_mode):
                links += 1
                target = os.readlink(p)
                if target.startswith("/") or links > _MAX_LINKS:
                    raise self.fail(entry, f"goes through symlink /{rel} -> {target[:100]}, "
                                    "which leads outside the layer's root")
                more = [t for t in target.split("/") if t not in ("", ".")]
                pending.extend(reversed(more))
            else:
                raise self.fail(entry, f"/{rel} is not a directory")
        real = "/".join(cur)
        self.resolved[key] = real
        return real

    def _wrote(self, rel: str) -> None:
        self.written.add(rel)
        d = rel.rpartition("/")[0]
        while d and d not in self.ancestors:
            self.ancestors.add(d)
            d = d.rpartition("/")[0]

    def _replace(self, rel: str) -> None:
        """Make room at rel for a new entry: whatever is there goes (a directory with all
        below it; a symlink is removed, never followed)."""
        p = self._abs(rel)
        st = lstat_or_none(p)
        if st is None:
            return
        if stat.S_ISDIR(st.st_mode):
            remove_tree(Path(p))
            self.resolved.clear()
        else:
            os.unlink(p)
            if stat.S_ISLNK(st.st_mode):
                self.resolved.clear()

    # ------------------------------------------------------------------ entries

    def _dir(self, m: Entry, rel: str) -> None:
        p = self._abs(rel)
        try:
            st = os.lstat(p)
            if not stat.S_ISDIR(st.st_mode):
                self._replace(rel)
                os.mkdir(p, 0o700)
        except FileNotFoundError:
            os.mkdir(p, 0o700)
        mode, uid, gid, atime, mtime, xattrs = _meta_of(m)
        # owner and xattrs now (exactly the entry's), mode and times once its entries are in
        apply_meta(p, Meta(stat.S_IFDIR | 0o700, uid, gid), times=False)
        write_xattrs(p, xattrs, replace=True)
        self.dir_meta[rel] = (mode, atime, mtime)

    def _file(self, tar: TarReader, m: Entry, rel: str) -> None:
        self._replace(rel)
        p = self._abs(rel)
        fd = os.open(p, _O_NEW, 0o600)
        try:
            left = m.size
            while left > 0:
                data = tar.read(min(left, _CHUNK))
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                left -= len(data)
            self._meta(fd, m)
        finally:
            os.close(fd)

    def _hardlink(self, m: Entry, rel: str) -> None:
        parts = self._clean(m.linkname, m.name)
        if not parts:
            raise self.fail(m.name, "is a hardlink to the root directory")
        parent = self._parent(m.name, parts[:-1], create=False)
        target = None if parent is None else (f"{parent}/{parts[-1]}" if parent else parts[-1])
        try:
            st = os.lstat(self._abs(target)) if target is not None else None
        except FileNotFoundError:
            st = None
        if st is None or target is None:
            raise self.fail(m.name, f"is a hardlink to {m.linkname[:200]!r}, which does not exist")
        if stat.S_ISDIR(st.st_mode):
            raise self.fail(m.name, f"is a hardlink to directory {m.linkname[:200]!r}")
        if target == rel:
            raise self.fail(m.name, "is a hardlink to itself")
        self._replace(rel)
        os.link(self._abs(target), self._abs(rel), follow_symlinks=False)

    def _whiteout(self, entry: str, parts: list[str]) -> None:
        base = parts[-1]
        parent = self._parent(entry, parts[:-1], create=False)
        if parent is None:
            return  # nothing below to hide
        if base == _OPAQUE:
            self._opaque(parent)
            return
        if base.startswith(_WH_META):
            return  # aufs bookkeeping (.wh..wh.plnk, ...): no content
        name = base[len(_WH):]
        if name in ("", ".", ".."):
            raise self.fail(entry, "is a whiteout of no name")
        rel = f"{parent}/{name}" if parent else name
        if rel in self.written or rel in self.ancestors:
            return  # a whiteout hides lower layers only, never this layer's own entries
        self._replace(rel)

    def _opaque(self, top: str) -> None:
        """Remove what the layers below had in directory top, keeping this layer's own."""
        stack = [top]
        while stack:
            d = stack.pop()
            try:
                names = os.listdir(self._abs(d))
            except NotADirectoryError:
                continue
            for name in names:
                rel = f"{d}/{name}" if d else name
                if rel in self.written or rel in self.ancestors:
                    if os.path.isdir(self._abs(rel)) and not os.path.islink(self._abs(rel)):
                        stack.append(rel)  # its lower content is hidden too
                    continue
                self._replace(rel)

    # ------------------------------------------------------------------ metadata

    def _meta(self, target: str | int, m: Entry, *, symlink: bool = False) -> None:
        """A new entry's owner, mode, xattrs and times, as its header says."""
        mode, uid, gid, atime, mtime, xattrs = _meta_of(m)
        kind = stat.S_IFLNK if symlink else stat.S_IFREG
        apply_meta(target, Meta(kind | mode, uid, gid, mtime, atime, xattrs))

    def _finish(self) -> None:
        """Directories get their mode and times last (their entries moved the mtimes),
        the deepest first; those removed or replaced since are skipped."""
        for rel in sorted(self.dir_meta, key=lambda r: -r.count("/")):
            p = self._abs(rel)
            st = lstat_or_none(p)
            if st is None or not stat.S_ISDIR(st.st_mode):
                continue
            mode, atime, mtime = self.dir_meta[rel]
            os.chmod(p, mode)
            os.utime(p, ns=(atime, mtime), follow_symlinks=False)


def _meta_of(m: Entry) -> tuple[int, int, int, int, int, dict[str, bytes]]:
    """(mode bits, uid, gid, atime ns, mtime ns, xattrs worth setting) of a tar entry."""
    xattrs = {k: v for k, v in m.xattrs.items() if k and not k.startswith(_SKIP_XATTRS)}
    atime = m.mtime_ns if m.atime_ns is None else m.atime_ns
    return (m.mode, m.uid, m.gid, atime, m.mtime_ns, xattrs)
