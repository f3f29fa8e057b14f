"""`type=local`: write a result as a plain directory tree the user may edit.

Real copies, never hardlinks into the store: modes, owners, mtimes (a directory's restored
after its contents), xattrs, symlinks, fifos, sockets and devices are kept, and files that
are hardlinks of each other within the result stay hardlinks of each other. An existing
destination directory is filled (entries in the way are replaced), as buildctl does; so is
the directory a symlink destination leads to."""

from __future__ import annotations

import os

from llb.fsutil import copy_tree
from llb.snapshot import Ref, Store
from llb.solver.errors import ExportError
from llb.solver.exporters import ExportContext, OutputSpec, check_options
from llb.solver.exporters.dest import check_dir_dest, write_error

__all__ = ["ExportError", "check", "export", "export_local"]


def check(spec: OutputSpec) -> None:
    """`type=local,dest=DIR`: DIR must be a directory llb can create or write into."""
    check_options(spec, ("dest",), required=("dest",))
    check_dir_dest(spec.dest)


def export(spec: OutputSpec, store: Store, ref: Ref | None,
           ctx: ExportContext | None = None) -> None:
    """Copy the result into the dest directory."""
    export_local(store, ref, spec.dest)


def export_local(store: Store, ref: Ref | None, dest: str | os.PathLike[str],
                 workers: int | None = None) -> None:
    """Copy the tree of ref (None = empty) into dest, created if missing, by llb.fsutil's
    copy_tree (`workers` threads; default: its WORKERS)."""
    dest = os.fspath(dest)
    try:
        os.makedirs(dest, exist_ok=True)
    except FileExistsError:
        raise ExportError(f"local output {dest} exists and is not a directory",
                          path=str(dest)) from None
    except OSError as e:
        raise write_error(e, dest, f"cannot create local output {dest}") from None
    if ref is None:
        return
    # a symlink to a directory is written into, as buildctl does (below it nothing is
    # followed: every entry is opened relative to its directory, without following)
    root = os.path.realpath(dest) if os.path.islink(dest) else dest
    with store.view_dir(ref) as src:
        try:
            copy_tree(src, root, into=True, workers=workers)
        except OSError as e:  # on a full disk what was copied stays: never a part of a file
            where = e.filename if isinstance(e.filename, str) else str(dest)
            raise write_error(e, dest, f"cannot write local output {where}", where) from None
