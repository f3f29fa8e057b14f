"""`type=tar`: write a result as a POSIX (pax) tar stream, to a file or to stdout.

Entries come in a deterministic order (depth first, names sorted, a directory before its
contents; no root entry), carry mode, numeric owner (no user or group names: they would
depend on the host), mtime to the nanosecond (pax `mtime` when it has a fraction) and xattrs
as pax `SCHILY.xattr.<name>` records. Files that are hardlinks of each other within the
result become one file and link entries; fifos and devices are kept; sockets cannot be
represented in tar and are left out, as GNU tar does."""

from __future__ import annotations

import os
import stat
import sys
import tarfile
from pathlib import Path
from typing import BinaryIO

from llb.fsutil import read_xattrs, walk
from llb.snapshot import Ref, Store
from llb.errors import is_no_space
from llb.solver.errors import ExportError
from llb.solver.exporters import ExportContext, OutputSpec, check_options
from llb.solver.exporters.dest import check_file_dest, write_file_dest

__all__ = ["check", "export", "export_tar"]


def check(spec: OutputSpec) -> None:
    """`type=tar,dest=FILE|-`: FILE must be writable ("-" is stdout)."""
    check_options(spec, ("dest",), required=("dest",))
    if spec.dest != "-":
        check_file_dest(spec.dest)


def export(spec: OutputSpec, store: Store, ref: Ref | None,
           ctx: ExportContext | None = None) -> None:
    """Write the tar stream to stdout or (through a temporary) to the dest file."""
    if spec.dest == "-":
        export_tar(store, ref, sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return
    write_file_dest(Path(spec.dest), lambda f: export_tar(store, ref, f))


def export_tar(store: Store, ref: Ref | None, fileobj: BinaryIO) -> None:
    """Write the tree of ref (None = empty) to fileobj as a tar stream (no seeking)."""
    try:
        with tarfile.open(fileobj=fileobj, mode="w|", format=tarfile.PAX_FORMAT,
                          encoding="utf-8", errors="surrogateescape") as tf:
            if ref is None:
                return
            with store.view(ref) as src:
                _write(tf, str(src))
    except (BrokenPipeError, ConnectionResetError):
        raise
    except OSError as e:
        if is_no_space(e):  # the destination's filesystem: write_file_dest names it
            raise
        raise ExportError(f"cannot write tar output: {e.strerror or e}") from None


class _Info(tarfile.TarInfo):
    """TarInfo whose pax records carry raw bytes (binary xattr values, non-UTF-8 names)
    without the `hdrcharset=BINARY` record GNU tar does not know, as star and GNU tar
    themselves write them."""

    @classmethod
    def _create_pax_generic_header(cls, pax_headers: dict[str, str], kind: bytes,
                                   encoding: str) -> bytes:
        records = b""
        for keyword, value in pax_headers.items():
            kw = keyword.encode("utf-8", "surrogateescape")
            val = value.encode("utf-8", "surrogateescape")
            body = len(kw) + len(val) + 3  # " ", "=", "\n"
            size = body + len(str(body))
            if len(str(size)) != len(str(body)):
                size = body + len(str(size))
            records += str(size).encode("ascii") + b" " + kw + b"=" + val + b"\n"
        info = {"name": "././@PaxHeader", "type": kind, "size": len(records),
                "magic": tarfile.POSIX_MAGIC}
        # TarInfo's own header helpers (the hook this override lives in; not in typeshed)
        return (cls._create_header(info, tarfile.USTAR_FORMAT, "ascii", "replace")  # type: ignore[attr-defined]
                + cls._create_payload(records))  # type: ignore[attr-defined]


def _write(tf: tarfile.TarFile, root: str) -> None:
    """One tar entry per entry of the tree, in llb.fsutil.walk's order; entries are read
    through their directory's descriptor, so no path length limits the tree's depth."""
    links: dict[tuple[int, int], str] = {}
    for e in walk(root):
        rel, st = e.rel, e.st
        assert st is not None  # a walk with stat
        mode = st.st_mode
        if stat.S_ISSOCK(mode):
            continue
        ti = _Info(rel)
        ti.mode = stat.S_IMODE(mode)
        ti.uid, ti.gid = st.st_uid, st.st_gid
        ti.uname = ti.gname = ""
        sec, frac = divmod(st.st_mtime_ns, 1_000_000_000)
        ti.mtime = sec
        pax: dict[str, str] = {}
        if frac:
            pax["mtime"] = f"{sec}.{frac:09d}".rstrip("0")
        for name, value in read_xattrs(e.name, dir_fd=e.dir_fd).items():
            pax["SCHILY.xattr." + name] = value.decode("utf-8", "surrogateescape")
        ti.pax_headers = pax
        key = (st.st_dev, st.st_ino)
        if not stat.S_ISDIR(mode) and not stat.S_ISLNK(mode) and st.st_nlink > 1:
            first = links.get(key)
            if first is not None:
                ti.type, ti.linkname = tarfile.LNKTYPE, first
                tf.addfile(ti)
                continue
            links[key] = rel
        if stat.S_ISREG(mode):
            ti.type, ti.size = tarfile.REGTYPE, st.st_size
            fd = os.open(e.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=e.dir_fd)
            with os.fdopen(fd, "rb") as f:
                tf.addfile(ti, f)
            continue
        if stat.S_ISDIR(mode):
            ti.type = tarfile.DIRTYPE
        elif stat.S_ISLNK(mode):
            ti.type, ti.linkname = tarfile.SYMTYPE, os.readlink(e.name, dir_fd=e.dir_fd)
        elif stat.S_ISFIFO(mode):
            ti.type = tarfile.FIFOTYPE
        else:
            ti.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        tf.addfile(ti)
