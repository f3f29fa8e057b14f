"""`type=local`: write a result as a plain directory tree the user may edit.

Real copies, never hardlinks into the store: modes, owners, mtimes (a directory's restored
after its contents), xattrs, symlinks, fifos, sockets and devices are kept, and files that
are hardlinks of each other within the result stay hardlinks of each other. An existing
destination directory is filled (entries in the way are replaced), as buildctl does."""

from __future__ import annotations

import errno
import os
import shutil
import stat
from pathlib import Path
from typing import Any, Iterator

from llb.errors import LLBError
from solver.ops import file_meta

__all__ = ["ExportError", "export_local", "walk"]


class ExportError(LLBError):
    """The result could not be written where the output spec says (bad output: exit 2)."""


def walk(root: str) -> Iterator[tuple[str, str, os.stat_result]]:
    """(relative path, path, lstat) of every entry below root, depth first, names sorted
    bytewise, each directory before its contents (a deterministic order)."""
    names = sorted(os.listdir(root), key=os.fsencode)
    for name in names:
        path = os.path.join(root, name)
        st = os.lstat(path)
        yield name, path, st
        if stat.S_ISDIR(st.st_mode):
            for rel, p, s in walk(path):
                yield f"{name}/{rel}", p, s


def export_local(store: Any, ref: Any, dest: Path) -> None:
    """Copy the tree of ref (None = empty) into dest, created if missing."""
    dest = Path(dest)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ExportError(f"local output {dest} exists and is not a directory",
                          path=str(dest)) from None
    except OSError as e:
        raise ExportError(f"cannot create local output {dest}: {e.strerror}",
                          path=str(dest)) from None
    if ref is None:
        return
    with store.view(ref) as src:
        try:
            _Copier(str(src), str(dest)).dir_contents(str(src), str(dest))
        except OSError as e:
            where = e.filename if isinstance(e.filename, str) else str(dest)
            raise ExportError(f"cannot write local output: {e.strerror}: {where}",
                              path=where) from None


class _Copier:
    def __init__(self, src_root: str, dst_root: str):
        self.src_root, self.dst_root = src_root, dst_root
        self.links: dict[tuple[int, int], str] = {}
        self.root_user = os.geteuid() == 0

    def dir_contents(self, src: str, dst: str) -> None:
        for name in sorted(os.listdir(src), key=os.fsencode):
            self.entry(os.path.join(src, name), os.path.join(dst, name))

    def entry(self, src: str, dst: str) -> None:
        st = os.lstat(src)
        mode = st.st_mode
        try:
            have = os.lstat(dst)
        except FileNotFoundError:
            have = None
        if have is not None and not (stat.S_ISDIR(mode) and stat.S_ISDIR(have.st_mode)):
            if stat.S_ISDIR(have.st_mode):
                shutil.rmtree(dst)
            else:
                os.unlink(dst)
            have = None
        if stat.S_ISDIR(mode):
            if have is None:
                os.mkdir(dst, 0o700)
            self.dir_contents(src, dst)
        elif not stat.S_ISLNK(mode) and st.st_nlink > 1 and \
                (st.st_dev, st.st_ino) in self.links:
            os.link(self.links[(st.st_dev, st.st_ino)], dst)
            return
        elif stat.S_ISREG(mode):
            file_meta.copy_data(src, dst)
        elif stat.S_ISLNK(mode):
            os.symlink(os.readlink(src), dst)
        else:
            file_meta.make_node(st, dst)
        if not stat.S_ISDIR(mode) and not stat.S_ISLNK(mode) and st.st_nlink > 1:
            self.links[(st.st_dev, st.st_ino)] = dst
        self.meta(src, dst, st)

    def meta(self, src: str, dst: str, st: os.stat_result) -> None:
        try:
            os.chown(dst, st.st_uid, st.st_gid, follow_symlinks=False)
        except PermissionError:
            if self.root_user:
                raise
        if not stat.S_ISLNK(st.st_mode):
            try:
                os.chmod(dst, stat.S_IMODE(st.st_mode))
            except OSError as e:  # set-id bits need the owner: keep the rest
                if e.errno != errno.EPERM:
                    raise
                os.chmod(dst, stat.S_IMODE(st.st_mode) & 0o1777)
        file_meta.set_xattrs(dst, file_meta.xattrs(src))
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
