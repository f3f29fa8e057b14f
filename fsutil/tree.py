"""Whole trees: remove one, measure one, copy one with every entry's metadata.

copy_tree works directory by directory through directory descriptors, a few directories at
once on threads (creating files waits on the disk, not on the GIL, so threads overlap it),
big files on threads of their own; a hardlink's later names are made once every file
exists, and directories get their owner, mode, xattrs and times last, deepest first, so
nothing written afterwards changes them and a read-only directory can still be filled."""

from __future__ import annotations

import errno
import os
import stat
import threading
from collections.abc import Callable, Collection, Sequence

from llb.fsutil.entry import O_FILE_IN, copy_entry, copy_file, copy_open_file, lstat_or_none
from llb.fsutil.errors import PathTooLongError
from llb.fsutil.meta import Creds, Meta, apply_meta, creds as current_creds
from llb.fsutil.policy import LINK_FALLBACK
from llb.fsutil.walk import listing, walk
from llb.fsutil.xattrs import read_xattrs

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:  # (concurrent.futures loads logging: imported where a pool starts)
    from concurrent.futures import Future, ThreadPoolExecutor

StrPath = str | os.PathLike[str]

# Threads of a copy: one per CPU (at least 2, at most 8). More overlap the disk's waits
# only when the disk is slow: on a quiet machine each thread hands the GIL back at every
# syscall, and 8 threads on 2 CPUs made 20x the futex calls of 2 (merge-files 100's
# cached export of 10,000 files: 0.69 s with 2 threads, 1.00 s with 8, same run).
WORKERS = min(8, max(2, os.cpu_count() or 1))
BIG_FILE = 1 << 20  # regular files this big are copied on threads of their own
SPLIT = 256  # entries of one directory per task: a big directory is copied on several threads

_O_TOP = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC  # a tree's root may be a symlink
_O_DIR = _O_TOP | os.O_NOFOLLOW


# ------------------------------------------------------------------------------ remove


def remove_tree(path: StrPath) -> None:
    """rm -rf: path and everything below it, at any depth; a missing path is fine, a
    symlink is removed itself. Entries vanishing meanwhile are fine too."""
    p = os.fspath(path)
    st = lstat_or_none(p)
    if st is None:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(p)
        return
    try:
        os.rmdir(p)  # empty (a session's scratch directory, mostly): done
        return
    except FileNotFoundError:
        return
    except OSError as e:
        if e.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.EACCES, errno.EPERM):
            raise
    for entry in walk(p, leave=True, stat=False):
        if not entry.is_dir:
            _remove_at(os.unlink, entry.name, entry.dir_fd)
        elif entry.leaving:
            _remove_at(os.rmdir, entry.name, entry.dir_fd)
    try:
        os.rmdir(p)
    except FileNotFoundError:
        pass


def _remove_at(remove: Callable[..., None], name: str, dir_fd: int) -> None:
    try:
        remove(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    except PermissionError:
        # a directory without write permission (not root): make it writable, once
        os.chmod(dir_fd, 0o700)
        remove(name, dir_fd=dir_fd)


# ------------------------------------------------------------------------------ usage


def disk_usage(paths: Sequence[StrPath], *, exclusive: bool = False) -> int:
    """Bytes of the blocks of every inode under these paths (themselves included), each
    inode counted once. exclusive: only what removing them all would free (directories, and
    inodes every link of which lies below them: a hardlink shared with a tree outside is
    not counted)."""
    links: dict[tuple[int, int], list[int]] = {}  # inode -> [links seen, nlink, bytes]
    total = 0

    def count(st: os.stat_result) -> None:
        nonlocal total
        if stat.S_ISDIR(st.st_mode):
            total += st.st_blocks * 512
            return
        rec = links.get((st.st_dev, st.st_ino))
        if rec is None:
            links[(st.st_dev, st.st_ino)] = [1, st.st_nlink, st.st_blocks * 512]
        else:
            rec[0] += 1

    for path in paths:
        try:
            top = os.lstat(path)
        except FileNotFoundError:
            continue
        count(top)
        if stat.S_ISDIR(top.st_mode):
            for e in walk(path):
                count(e.st)  # type: ignore[arg-type]  # a walk with stat
    return total + sum(b for seen, nlink, b in links.values() if seen >= nlink or not exclusive)


# ------------------------------------------------------------------------------ copy


def copy_tree(src: StrPath, dst: StrPath, *, into: bool = False, link: bool = False,
              only: Collection[str] | None = None, ctimes: dict[int, int] | None = None,
              workers: int | None = None, check: Callable[[], None] | None = None) -> None:
    """Recreate the tree at src at dst: content, owners, modes, xattrs, times, symlinks,
    special files, and hardlinks among its files kept as hardlinks of each other.

    into=False: dst must not exist; it is made with src's own metadata. into=True: dst is
    a directory (made if missing) that is filled: entries in the way are replaced, a
    directory merged into; dst's own metadata is left alone.
    link: every non-directory is hardlinked to src's (a copy where that fails).
    only: the relative paths to copy (a directory's contents are visited only when it is
    in); None: all. ctimes: receives inode -> ctime_ns of every non-directory written
    (a later differ tells an untouched copy by its ctime). workers: threads (WORKERS).
    check: called before each directory and every 256 entries (a caller's cancellation
    raises from it)."""
    s, d = os.fspath(src), os.fspath(dst)
    job = _CopyJob(s, d, link, only, ctimes, WORKERS if workers is None else workers, check)
    if into:
        os.makedirs(d, exist_ok=True)
        job.run(not os.listdir(d))
    else:
        st = os.lstat(s)
        os.mkdir(d, 0o700)
        job.dirs.append((s, d, st))
        job.run(True)


# a directory to copy: (src, dst, rel, fresh, None), or a part of one: its entries to copy
_Task = tuple[str, str, str, bool, "list[tuple[str, os.stat_result | None, bool]] | None"]


class _CopyJob:
    """One copy_tree: directories are tasks (each copies its own entries and returns its
    subdirectories); state shared by the threads is behind `lock`."""

    def __init__(self, src: str, dst: str, link: bool, only: Collection[str] | None,
                 ctimes: dict[int, int] | None, workers: int,
                 check: Callable[[], None] | None):
        self.src, self.dst, self.link, self.only = src, dst, link, only
        self.ctimes, self.workers, self.check = ctimes, max(1, workers), check
        self.first: dict[tuple[int, int], str] = {}   # (dev, ino) -> dst path of its first name
        self.links: list[tuple[str, str]] = []        # (existing dst path, new dst path)
        self.dirs: list[tuple[str, str, os.stat_result]] = []  # (src, dst, lstat) to finish
        self.lock = threading.Lock()
        self.creds = current_creds()
        self._big: list[Future[None]] = []
        self._big_pool: ThreadPoolExecutor | None = None

    def run(self, fresh: bool) -> None:
        # one directory at a time on this thread until two wait: a chain of single
        # subdirectories (a deep tree) never starts the pool
        todo: list[_Task] = [(self.src, self.dst, "", fresh, None)]
        try:
            while todo and (self.workers == 1 or len(todo) == 1):
                todo.extend(self.copy_dir(*todo.pop()))
            if todo:
                self._run_pool(todo)
        finally:
            if self._big_pool is not None:
                self._big_pool.shutdown(wait=True)
        for f in self._big:
            f.result()
        for have, new in self.links:
            os.link(have, new)
            if self.ctimes is not None:
                st = os.lstat(new)
                self.ctimes[st.st_ino] = st.st_ctime_ns
        for s, d, st in sorted(self.dirs, key=lambda t: -t[1].count("/")):
            apply_meta(d, Meta.of(st, read_xattrs(s)))

    def _run_pool(self, todo: list[_Task]) -> None:
        """Copy the directories of todo, and those they hold, on this thread and workers - 1
        more: plain threads taking tasks from one stack (a ThreadPoolExecutor would import
        concurrent.futures, and logging with it, into every export of a tree). A failure,
        or a signal's exception on this thread, stops them all at their next directory and
        is raised here once they are done."""
        cond = threading.Condition()
        stack = list(todo)
        pending = len(stack)  # tasks on the stack or running
        error: BaseException | None = None
        stop = False  # this thread was interrupted: the others take no more tasks

        def work() -> None:
            nonlocal pending, error
            while True:
                with cond:
                    while not stack and pending > 0 and not stop:
                        cond.wait(0.1)  # (the main thread: see solver.scheduler._next_done)
                    if stop or not stack:
                        return  # (nothing waits or runs: all done)
                    item = stack.pop()
                subs: list[_Task] = []
                try:
                    if error is None:
                        subs = self.copy_dir(*item)
                except BaseException as e:  # noqa: BLE001 (re-raised once all are done)
                    with cond:
                        error = error or e
                finally:
                    with cond:
                        stack.extend(subs)
                        pending += len(subs) - 1
                        cond.notify_all()

        threads = [threading.Thread(target=work, name="llb-copy", daemon=True)
                   for _ in range(self.workers - 1)]
        try:
            # started inside the try: a signal's KeyboardInterrupt out of a start() must
            # stop the threads already copying, not leave them writing into a tree that
            # the caller's cleanup removes
            for t in threads:
                t.start()
            work()
        except BaseException as e:  # a signal while this thread waited: stop the others
            with cond:
                error = error or e
                stop = True
                cond.notify_all()
        finally:
            for t in threads:
                if t.ident is not None:  # (started)
                    t.join()
        if error is not None:
            raise error

    def copy_dir(self, src: str, dst: str, rel: str, fresh: bool,
                 items: list[tuple[str, os.stat_result | None, bool]] | None = None
                 ) -> list[_Task]:
        """Copy the entries of src into dst (fresh: made by us, so empty), or only `items`
        of them (a part of a big directory); return the subdirectories, and the other
        parts of a big directory, still to copy."""
        if self.check is not None:
            self.check()
        subdirs: list[_Task] = []
        how = _O_DIR if rel else _O_TOP
        sfd = _open_dir(src, how)
        try:
            dfd = _open_dir(dst, how)
            try:
                # the common entry, a small regular file into a directory we made, is
                # copied right here: the fewest Python steps per file (a tree of 10,000
                # small files is mostly this loop), its lstat the fstat of the file opened
                # to read it (regular files are listed without one)
                plain = fresh and not self.link and self.only is None
                if items is None:
                    if fresh:  # made by us, but a set-group-ID parent would give it its group
                        dst_st = os.fstat(dfd)
                        fresh = dst_st.st_gid == self.creds.gid and \
                            not dst_st.st_mode & stat.S_ISGID
                        plain = plain and fresh
                    items = listing(sfd, stat_files=not plain)
                    if len(items) > SPLIT and self.workers > 1:
                        subdirs.extend((src, dst, rel, fresh, items[i:i + SPLIT])
                                       for i in range(SPLIT, len(items), SPLIT))
                        items = items[:SPLIT]
                creds, after = self.creds, None if self.ctimes is None else self._record_fd
                check, first = self.check, self._first_name
                open_, fstat, close, s_isreg = os.open, os.fstat, os.close, stat.S_ISREG
                for i, (name, st, is_dir) in enumerate(items):
                    if check is not None and i & 255 == 255:
                        check()  # a big directory: once in a while
                    try:
                        if st is None:  # a regular file, in a plain copy: open it first
                            fin = open_(name, O_FILE_IN, dir_fd=sfd)
                            try:
                                st = fstat(fin)
                                if st.st_size < BIG_FILE and s_isreg(st.st_mode):
                                    if st.st_nlink == 1 or first(st, f"{dst}/{name}"):
                                        copy_open_file(fin, st, name, dfd, None, creds, after)
                                    continue
                            finally:
                                close(fin)
                        r = f"{rel}/{name}" if rel else name
                        if self.only is not None and r not in self.only:
                            continue
                        sub = self.entry(sfd, dfd, src, dst, name, r, st, fresh)
                    except OSError as e:
                        _name_path(e, f"{dst}/{name}")
                        raise
                    if sub is not None:
                        subdirs.append(sub)
            finally:
                os.close(dfd)
        finally:
            os.close(sfd)
        return subdirs

    def entry(self, sfd: int, dfd: int, src_dir: str, dst_dir: str, name: str, rel: str,
              st: os.stat_result, fresh: bool) -> _Task | None:
        mode = st.st_mode
        src, dst = f"{src_dir}/{name}", f"{dst_dir}/{name}"
        is_dir = stat.S_ISDIR(mode)
        existing_dir = False
        if not fresh:  # an existing destination: replace what is in the way
            try:
                have = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            except FileNotFoundError:
                have = None
            if have is not None:
                if is_dir and stat.S_ISDIR(have.st_mode):
                    existing_dir = True
                elif stat.S_ISDIR(have.st_mode):
                    remove_tree(dst)
                else:
                    os.unlink(name, dir_fd=dfd)
        if is_dir:
            if not existing_dir:
                os.mkdir(name, 0o700, dir_fd=dfd)
            with self.lock:
                self.dirs.append((src, dst, st))
            return src, dst, rel, not existing_dir, None
        if self.link:
            try:
                os.link(name, name, src_dir_fd=sfd, dst_dir_fd=dfd, follow_symlinks=False)
                return None
            except OSError as e:
                if e.errno not in LINK_FALLBACK:
                    raise
        if st.st_nlink > 1 and not self._first_name(st, dst):
            return None
        creds = self.creds if fresh else None
        if stat.S_ISREG(mode):
            if st.st_size >= BIG_FILE and self.workers > 1:
                self._copy_big(src, dst, st, creds)
            else:
                self.regular(sfd, dfd, name, st, creds)
            return None
        copy_entry(name, name, st, src_dir_fd=sfd, dst_dir_fd=dfd, creds=creds)
        if self.ctimes is not None:
            self._record(os.stat(name, dir_fd=dfd, follow_symlinks=False))
        return None

    def _first_name(self, st: os.stat_result, dst: str) -> bool:
        """True when dst is the first name of a multiply-linked inode met in this copy (it
        gets a copy); else its link to the first is made at the end. (dict.setdefault is
        atomic: no lock for the common first name.)"""
        first = self.first.setdefault((st.st_dev, st.st_ino), dst)
        if first is dst:
            return True
        with self.lock:
            self.links.append((first, dst))
        return False

    def regular(self, sfd: int, dfd: int, name: str, st: os.stat_result,
                creds: Creds | None) -> None:
        """Copy one regular file through its two descriptors, created with its final mode
        (minus the umask), owner set only where it is not already ours."""
        copy_file(name, name, st, src_dir_fd=sfd, dst_dir_fd=dfd, creds=creds,
                  after=None if self.ctimes is None else self._record_fd)

    def _record_fd(self, fd: int) -> None:
        self._record(os.fstat(fd))

    def _record(self, st: os.stat_result) -> None:
        with self.lock:
            self.ctimes[st.st_ino] = st.st_ctime_ns  # type: ignore[index]

    def _copy_big(self, src: str, dst: str, st: os.stat_result, creds: Creds | None) -> None:
        """Copy a big regular file on the big-file pool (started on first use); run() waits
        for all of them before it makes hardlinks and finishes the directories."""
        with self.lock:
            if self._big_pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._big_pool = ThreadPoolExecutor(self.workers,
                                                    thread_name_prefix="llb-copy-file")
            self._big.append(self._big_pool.submit(self._regular_at, src, dst, st, creds))

    def _regular_at(self, src: str, dst: str, st: os.stat_result, creds: Creds | None) -> None:
        sdir, ddir = os.path.dirname(src), os.path.dirname(dst)
        sfd = os.open(sdir, _O_TOP if sdir == self.src else _O_DIR)
        try:
            dfd = os.open(ddir, _O_TOP if ddir == self.dst else _O_DIR)
            try:
                self.regular(sfd, dfd, os.path.basename(src), st, creds)
            except OSError as e:
                _name_path(e, dst)
                raise
            finally:
                os.close(dfd)
        finally:
            os.close(sfd)


def _open_dir(path: str, how: int) -> int:
    try:
        return os.open(path, how)
    except OSError as e:
        if e.errno == errno.ENAMETOOLONG:
            raise PathTooLongError(path) from None
        raise


def _name_path(e: OSError, path: str) -> None:
    """Make e name the path it failed on (an absolute path) unless it does."""
    if not isinstance(e.filename, str) or not e.filename.startswith("/"):
        e.filename = path
