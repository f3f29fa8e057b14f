"""The hardlink merge: write into an empty directory the tree that applying layers in order
onto an empty tree gives, with BuildKit's MergeOp semantics (docs/design.md, "Merge").

Every non-directory is hardlinked from its immutable layer (a per-file copy when the kernel
says EXDEV or EMLINK); directories are created fresh, their owner and xattrs set at once and
their mode and mtime at the end, after their contents are in place. The work is one pass over
each layer's change list: O(changes) syscalls, no data copied, no input ever written.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterable
from pathlib import Path

from llb.fsutil import copy_entry, copy_xattrs, creds, remove_tree
from llb.fsutil.policy import LINK_FALLBACK
from llb.errors import is_no_space
from llb.snapshot.errors import SnapshotError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from llb.snapshot.layers import Layer

__all__ = ["MergeError", "apply_layers"]

# The cross-snapshot hardlink (a module attribute so tests can make it fail like EXDEV).
_link = os.link


class MergeError(SnapshotError):
    """A layer could not be applied (its content is missing or the disk refused a write)."""


def apply_layers(dest: Path, layers: Iterable[Layer]) -> None:
    """Write into the empty directory dest the tree of every layer applied in order.

    Each layer offers `changes()` (sorted by path; opaque directories already expanded into
    deletions) and `path(rel)`, where that entry's content and metadata live.
    """
    layers = list(layers)
    merger = _Merger(os.fspath(dest))
    deleted = _last_deletions(layers)
    for i, layer in enumerate(layers):
        later = {p for p, j in deleted.items() if j > i}
        merger.apply(layer, later or None)
    merger.finish()


def _last_deletions(layers: list[Layer]) -> dict[str, int]:
    """path -> index of the last layer that deletes it."""
    out: dict[str, int] = {}
    for i, layer in enumerate(layers):
        for change in layer.changes():
            if change.kind == "delete":
                out[change.path] = i
    return out


def _deleted_later(rel: str, later: set[str]) -> bool:
    """Whether a later layer deletes rel or a directory above it (`later`: the paths the
    layers after this one delete): then what this layer puts at rel would be removed again,
    so it is never written (a merge of a tree and its own deletions links and unlinks
    nothing, and on ext4 without a journal freed inodes slow down the next creations). So
    a deletion finds nothing to remove but the directories an earlier deletion's parents
    made."""
    while rel:
        if rel in later:
            return True
        rel = rel.rpartition("/")[0]
    return False


def _source_of(layer: Layer) -> Callable[[str], str]:
    """rel -> the layer's path for it, as a str (the hot loop wants no Path objects)."""
    prefix = _root_prefix(layer)
    if prefix is not None:
        return lambda rel: prefix + rel
    path = layer.path
    return lambda rel: os.fspath(path(rel))


def _root_prefix(layer: Layer) -> str | None:
    """The layer's root directory and a "/" (its path for rel is that and rel), where it
    has one."""
    root = getattr(layer, "root", None)
    return os.fspath(root) + "/" if root is not None else None


def _check_rel(rel: str) -> None:
    if not rel or rel[0] == "/" or any(p in ("", ".", "..") for p in rel.split("/")):
        raise MergeError(f"merge: change path {rel!r} is not a plain relative path", path=rel)


class _Merger:
    """State of one merge: the dest root and the directories whose mode and mtime are
    set at the end (rel -> (mode, atime_ns, mtime_ns))."""

    def __init__(self, root: str):
        self.root = root
        self.dirs: dict[str, tuple[int, int, int]] = {}
        # who a copied entry belongs to when created: our directories are never set-group-ID
        # while they are filled (their mode comes at finish), so new entries get our group
        self.creds = creds()

    # ------------------------------------------------------------------ one layer

    def apply(self, layer: Layer, later: set[str] | None = None) -> None:
        """Apply one layer; entries a later layer deletes (`later` holds the paths the
        later layers delete: _deleted_later) are left out."""
        root = self.root
        src_of = _source_of(layer)
        prefix = _root_prefix(layer)  # (src_of(rel) is prefix + rel where there is one)
        st = _LayerState(src_of)
        link = _link
        rel = ""
        try:
            for change in layer.changes():
                rel = change.path
                if rel[:1] == "/" or ".." in rel or "//" in rel or not rel:
                    _check_rel(rel)
                kind = change.kind
                if later is not None and kind != "delete":
                    if rel in later or "/" in rel and _deleted_later(rel, later):
                        continue
                parent = rel.rpartition("/")[0]
                if parent and parent not in st.dirs_done:
                    if not self._parents(st, parent):
                        continue  # the layer has no such directory: nothing of it to apply
                if kind == "delete":
                    # Every entry an earlier layer had at rel or below was left out (a later
                    # deletion's) and dest started empty: only a directory made for an
                    # earlier deletion's parents (as above) can be there, and it is in
                    # self.dirs.
                    if rel in self.dirs:
                        _remove(root + "/" + rel)
                    continue
                dst = root + "/" + rel
                src = prefix + rel if prefix is not None else src_of(rel)
                err = None
                if not st.no_link:
                    try:
                        link(src, dst, follow_symlinks=False)
                        continue
                    except OSError as e:
                        if e.errno != errno.EEXIST and e.errno not in LINK_FALLBACK:
                            raise
                        err = e.errno
                self._put(st, rel, src, dst, err)
        except MergeError:
            raise
        except OSError as e:
            if is_no_space(e):  # a full disk is no merge problem: the solver names the root
                raise
            where = e.filename or rel
            raise MergeError(
                f"merge: applying layer {getattr(layer, 'id', '?')} at {rel!r}: "
                f"{e.strerror or e} ({where})",
                path=rel,
            ) from e

    def _put(self, st: _LayerState, rel: str, src: str, dst: str, err: int | None) -> None:
        """The slow path, after the fast hardlink failed with errno err (None: not tried):
        dest taken (EEXIST), a directory (EPERM), another filesystem, too many links."""
        try:
            sst = os.lstat(src)
        except FileNotFoundError:
            raise MergeError(f"merge: layer content for {rel!r} is missing ({src})", path=rel)
        if stat.S_ISDIR(sst.st_mode):
            self._dir(rel, src, sst)
            st.dirs_done.add(rel)
            return
        if err == errno.EXDEV:
            st.no_link = True  # the layer lives on another filesystem: copy the rest
        if err != errno.EEXIST:  # most likely free: try first, saving a syscall
            try:
                self._place(st, src, dst, sst, err)
                return
            except FileExistsError:
                pass
        _remove(dst)  # whatever is there goes (a directory with all below it)
        self._place(st, src, dst, sst, err)

    def _place(self, st: _LayerState, src: str, dst: str, sst: os.stat_result,
               err: int | None) -> None:
        """Create dst for the non-directory src: a hardlink of it, of this layer's earlier
        copy of the same inode, or a copy. FileExistsError when dst is taken."""
        key = (sst.st_dev, sst.st_ino)
        if sst.st_nlink > 1 and key in st.copied:
            # Keep this layer's hardlinks linked: link to our own copy of that inode.
            try:
                os.link(st.copied[key], dst, follow_symlinks=False)
                return
            except OSError as e:
                if e.errno not in LINK_FALLBACK:
                    raise
        elif not st.no_link and err in (None, errno.EEXIST):
            try:
                _link(src, dst, follow_symlinks=False)
                return
            except OSError as e:
                if e.errno not in LINK_FALLBACK:
                    raise
                if e.errno == errno.EXDEV:
                    st.no_link = True
        copy_entry(src, dst, sst, creds=self.creds)
        if sst.st_nlink > 1:
            st.copied.setdefault(key, dst)

    def _parents(self, st: _LayerState, parent: str) -> bool:
        """Apply the layer's own directories from the top down to parent (the layer touches
        them: their metadata wins); False if the layer has no directory there."""
        parts = parent.split("/")
        prefix = ""
        for part in parts:
            prefix = prefix + "/" + part if prefix else part
            if prefix in st.dirs_done:
                continue
            if prefix in st.missing:
                return False
            src = st.src_of(prefix)
            try:
                sst = os.lstat(src)
            except (FileNotFoundError, NotADirectoryError):
                sst = None
            if sst is None or not stat.S_ISDIR(sst.st_mode):
                st.missing.add(prefix)
                return False
            self._dir(prefix, src, sst)
            st.dirs_done.add(prefix)
        return True

    def _dir(self, rel: str, src: str, sst: os.stat_result) -> None:
        """Make dest's rel a directory carrying src's owner and xattrs (now) and its mode
        and mtime (at finish). An existing directory is merged into; anything else there
        (file, symlink: never followed) is removed first."""
        dst = self.root + "/" + rel
        created = True
        try:
            os.mkdir(dst, 0o700)
        except FileExistsError:
            dst_st = os.lstat(dst)
            if stat.S_ISDIR(dst_st.st_mode):
                created = False
            else:
                os.unlink(dst)
                os.mkdir(dst, 0o700)
        if created or dst_st.st_uid != sst.st_uid or dst_st.st_gid != sst.st_gid:
            os.chown(dst, sst.st_uid, sst.st_gid, follow_symlinks=False)
        copy_xattrs(src, dst, replace=not created)
        self.dirs[rel] = (stat.S_IMODE(sst.st_mode), sst.st_atime_ns, sst.st_mtime_ns)

    # ------------------------------------------------------------------ the end

    def finish(self) -> None:
        """Set mode and times of every directory still standing where it was recorded.

        Entries whose path was since deleted or replaced (by a file or a symlink, which is
        never followed) are skipped: a directory counts only if its parent counted.
        """
        valid: list[tuple[str, tuple[int, int, int]]] = []
        ok: set[str] = set()
        for rel in sorted(self.dirs):
            parent = rel.rpartition("/")[0]
            if parent and parent not in ok:
                continue
            try:
                dst_st = os.lstat(self.root + "/" + rel)
            except FileNotFoundError:
                continue
            if not stat.S_ISDIR(dst_st.st_mode):
                continue
            ok.add(rel)
            valid.append((rel, self.dirs[rel]))
        for rel, (mode, atime, mtime) in reversed(valid):
            dst = self.root + "/" + rel
            os.chmod(dst, mode)  # a directory (just lstat-ed): nothing to follow
            os.utime(dst, ns=(atime, mtime), follow_symlinks=False)
        self.dirs.clear()


class _LayerState:
    """What applying one layer remembers: its directories already applied, paths that are
    not directories in it, and (for copies) the first copy of each multiply-linked inode."""

    __slots__ = ("src_of", "dirs_done", "missing", "copied", "no_link")

    def __init__(self, src_of: Callable[[str], str]):
        self.src_of = src_of
        self.dirs_done: set[str] = set()
        self.missing: set[str] = set()
        self.copied: dict[tuple[int, int], str] = {}
        self.no_link = False


def _remove(dst: str) -> None:
    """Remove dst whatever it is (a directory with all below it); never follows a symlink."""
    try:
        os.unlink(dst)
    except FileNotFoundError:
        pass
    except IsADirectoryError:
        remove_tree(dst)
