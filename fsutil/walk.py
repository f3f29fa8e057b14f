"""The one tree walker: every entry below a directory, depth first, names sorted bytewise, a
directory before its contents (and, on request, again after them), never following a
symlink. Iterative at any depth: it moves through directory descriptors, holding one per
level for the first KEEP_FDS levels and climbing back through `..` (checked to be the
directory it came from) below that, so neither the interpreter's recursion limit, nor the
process's open-file limit, nor PATH_MAX bounds the depth of a tree it can walk."""

from __future__ import annotations

import errno
import os
import stat as stat_
from collections.abc import Iterator

from llb.fsutil.errors import check_length

KEEP_FDS = 64  # levels whose directory stays open while the walk is below them

_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_O_SUBDIR = _O_DIR | os.O_NOFOLLOW

_Item = tuple[str, "os.stat_result | None", bool]  # name, lstat (or None), is a directory


class Entry:
    """One entry of a walk. rel: its path below the walked root ("a/b"); name: its last
    component; st: its lstat (None in a walk without stat); dir_fd: a descriptor of the
    directory holding it, valid until the walk moves on (use it with *at calls, which work
    at any depth); leaving: this is a directory seen again after its contents."""

    __slots__ = ("prefix", "rel", "name", "st", "is_dir", "dir_fd", "leaving", "pruned")

    def __init__(self, prefix: str, rel: str, name: str, st: os.stat_result | None,
                 is_dir: bool, dir_fd: int, leaving: bool = False):
        self.prefix, self.rel, self.name, self.st = prefix, rel, name, st
        self.is_dir, self.dir_fd, self.leaving = is_dir, dir_fd, leaving
        self.pruned = False

    @property
    def path(self) -> str:
        """The entry's full path; PathTooLongError where no system call would take it."""
        return check_length(self.prefix + self.rel)

    def prune(self) -> None:
        """Do not walk into this directory (call before the walk moves on)."""
        self.pruned = True

    def __repr__(self) -> str:
        return f"Entry({self.rel!r}{', leaving' if self.leaving else ''})"


class _Level:
    __slots__ = ("entry", "prefix", "items", "next", "ident", "fd")

    def __init__(self, entry: Entry | None, prefix: str, items: list[_Item],
                 ident: tuple[int, int], fd: int | None):
        self.entry, self.prefix, self.items, self.ident, self.fd = entry, prefix, items, ident, fd
        self.next = 0


def listing(fd: int, want_stat: bool = True, *, stat_files: bool = True) -> list[_Item]:
    """The entries of the directory open as fd, sorted bytewise by name. stat_files=False:
    regular files (as the directory's d_type says) carry no lstat, a caller that opens them
    taking it from the open file (an fstat: no second lookup of the name)."""
    with os.scandir(fd) as it:
        if want_stat:
            items: list[_Item] = []
            for e in it:
                if not stat_files and e.is_file(follow_symlinks=False):
                    items.append((e.name, None, False))
                    continue
                st = e.stat(follow_symlinks=False)
                items.append((e.name, st, stat_.S_ISDIR(st.st_mode)))
        else:
            items = [(e.name, None, e.is_dir(follow_symlinks=False)) for e in it]
    items.sort(key=_first)
    if not all(name.isascii() for name, _, _ in items):
        # str order is UTF-8 byte order except for undecodable bytes (surrogate escapes)
        items.sort(key=_name_bytes)
    return items


def _first(item: _Item) -> str:
    return item[0]


def _name_bytes(item: _Item) -> bytes:
    return os.fsencode(item[0])


def walk(root: str | os.PathLike[str], *, leave: bool = False,
         stat: bool = True) -> Iterator[Entry]:
    """Every entry below root (root itself excluded), in the order the module docstring
    gives. leave: a directory walked into is yielded again, with leaving=True, once its
    contents are done (its dir_fd is again the one of the directory holding it); a pruned
    directory is not, one that vanished before the walk could enter it is, at once.
    stat=False: entries carry no lstat (is_dir comes from the directory listing)."""
    top = os.fspath(root)
    prefix = top if top.endswith("/") else top + "/"
    stack = [_open_level(top, None, _O_DIR, None, "", stat)]
    try:
        while True:
            level = stack[-1]
            fd = level.fd
            assert fd is not None  # the deepest level is always open
            if level.next < len(level.items):
                name, st, is_dir = level.items[level.next]
                level.next += 1
                entry = Entry(prefix, level.prefix + name, name, st, is_dir, fd)
                yield entry
                if is_dir and not entry.pruned and not _descend(stack, entry, prefix, stat) \
                        and leave:
                    yield Entry(prefix, entry.rel, name, st, True, fd, leaving=True)
                continue
            if len(stack) == 1:
                return
            parent = stack[-2]
            up = parent.fd
            if up is None:  # closed on the way down: climb back through ".."
                up = parent.fd = _climb(fd, parent.ident, prefix + parent.prefix)
            stack.pop()
            os.close(fd)
            if leave and level.entry is not None:
                e = level.entry
                yield Entry(prefix, e.rel, e.name, e.st, True, up, leaving=True)
    finally:
        for level in stack:
            fd, level.fd = level.fd, None
            if fd is not None:
                os.close(fd)


def _descend(stack: list[_Level], entry: Entry, prefix: str, want_stat: bool) -> bool:
    """Open entry (a directory of the deepest level) and push its level; False when it
    is gone (or no longer a directory) since it was listed."""
    level = stack[-1]
    try:
        sub = _open_level(entry.name, level.fd, _O_SUBDIR, entry, entry.rel + "/", want_stat)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as e:
        e.filename = prefix + entry.rel
        raise
    if len(stack) >= KEEP_FDS and len(stack) > 1 and level.fd is not None:
        # marked closed first: a signal's exception between the two must not make the
        # walk's cleanup close it again (an EBADF, or another thread's new descriptor)
        fd, level.fd = level.fd, None
        os.close(fd)
    stack.append(sub)
    return True


def _open_level(name: str, dir_fd: int | None, flags: int, entry: Entry | None, prefix: str,
                want_stat: bool) -> _Level:
    """Open a directory and list it: one level of the walk."""
    fd = os.open(name, flags, dir_fd=dir_fd)
    try:
        st = os.fstat(fd)
        return _Level(entry, prefix, listing(fd, want_stat), (st.st_dev, st.st_ino), fd)
    except BaseException:
        os.close(fd)
        raise


def _climb(fd: int, ident: tuple[int, int], where: str) -> int:
    """The parent of the directory open as fd, checked to be the one the walk came from."""
    parent = os.open("..", _O_DIR, dir_fd=fd)
    st = os.fstat(parent)
    if (st.st_dev, st.st_ino) != ident:
        os.close(parent)
        raise OSError(errno.ESTALE, "directory moved while it was walked", where)
    return parent
