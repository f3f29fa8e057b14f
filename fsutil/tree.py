"""Whole trees: remove one, measure one, copy one with every entry's metadata.

copy_tree works directory by directory through directory descriptors, a few directories at
once on threads (creating files waits on the disk, not on the GIL, so threads overlap it),
big files on threads of their own, and, in a big plain copy, whole directories in a second
process (llb.fsutil.copyproc: its own GIL); a hardlink's later names are made once every file
exists, and directories get their owner, mode, xattrs and times last, deepest first, so
nothing written afterwards changes them and a read-only directory can still be filled."""

from __future__ import annotations

import errno
import os
import stat
import threading
from collections.abc import Callable, Collection, Sequence

from llb.fsutil.entry import O_FILE_IN, copy_entry, copy_file, copy_open_file, lstat_or_none
from llb.fsutil.errors import FsError, PathTooLongError
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
# A plain copy of a fresh tree starts a second process to copy whole directories beside it
# (copyproc) once it has listed SECOND_PROCESS entries, the whole directories waiting hold
# about SECOND_PROCESS_LEFT more (their number times the entries per directory so far), and
# the machine's CPUs were SPARE_CPU idle (of one CPU) since the copy began: the process's
# start costs ~45 ms, some 600 small files' worth, and it only pays on a CPU nobody uses.
# Measured, copies of 100 small files per directory, medians of 7-9 alternating runs, 2 CPUs
# shared with other work: 10,000 files 0.65-0.70 -> 0.42-0.49 s, 50,000 files 4.6 -> 3.4 s,
# 4,000 files 0.25-0.30 -> 0.24 s; 1,000 files, a process started after 500 entries:
# 0.071 -> 0.097 s (hence the rule on what is left); with the other CPU busy (a callgrind
# run), 10,000 files 0.78 -> 0.93 s (hence the idle check). The copy's own threads and the
# kernel's writeback leave 0.3-0.7 of a CPU idle on a quiet 2-CPU machine when it decides,
# ~0 with the other CPU busy: the idle check asks 0.2 (0.5 left the process unstarted on a
# quiet machine in 5 runs of 6).
SECOND_PROCESS = 1000
SECOND_PROCESS_LEFT = 2000
SPARE_CPU = 0.2

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
    (a later differ tells an untouched copy by its ctime). workers: threads (WORKERS); a
    plain copy (none of link, only, ctimes) of a big tree on more than one also hands
    whole directories to a second process (see SECOND_PROCESS), which it stops and reaps
    before it returns or raises.
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
        self.seen = 0  # entries listed so far (approximate: threads add without the lock)
        self.listed = 0  # directories listed so far (as approximate)
        # names the second process copied that another name of their inode had already
        # given a copy in this one: (first name, duplicate), made links of it at the end
        self.dups: list[tuple[str, str]] = []
        # the second process's multiply-linked files: (dev, ino, dst path, copied there)
        self.linked: list[tuple[int, int, str, bool]] = []
        # a second process may take whole directories: a plain copy (no links, filter or
        # ctimes) on more than one thread
        self.process = workers > 1 and not link and only is None and ctimes is None
        self.cpu_at_start = _cpu_times() if self.process else (0, 0)

    def run(self, fresh: bool) -> None:
        # one directory at a time on this thread until two wait: a chain of single
        # subdirectories (a deep tree) never starts the pool
        todo: list[_Task] = [(self.src, self.dst, "", fresh, None)]
        try:
            while todo and (self.workers == 1 or len(todo) == 1):
                todo.extend(self.copy_dir(*todo.pop()))
            if todo:
                todo = self._run_pool(todo)
            if todo:  # big enough for a second process
                self._run_split(todo)
        finally:
            if self._big_pool is not None:
                self._big_pool.shutdown(wait=True)
        for f in self._big:
            f.result()
        for n, (have, dup) in enumerate(self.dups):  # (a copy stays until its link is in)
            tmp = f"{os.path.dirname(dup)}/.llb-link-{os.getpid()}-{n}"
            try:
                os.link(have, tmp)
                os.rename(tmp, dup)
            except OSError as e:
                _name_path(e, dup)
                raise
        for have, new in self.links:
            os.link(have, new)
            if self.ctimes is not None:
                st = os.lstat(new)
                self.ctimes[st.st_ino] = st.st_ctime_ns
        for s, d, st in sorted(self.dirs, key=lambda t: -t[1].count("/")):
            apply_meta(d, Meta.of(st, read_xattrs(s)))

    def _run_pool(self, todo: list[_Task]) -> list[_Task]:
        """Copy the directories of todo, and those they hold, on this thread and workers - 1
        more: plain threads taking tasks from one stack (a ThreadPoolExecutor would import
        concurrent.futures, and logging with it, into every export of a tree). A failure,
        or a signal's exception on this thread, stops them all at their next directory and
        is raised here once they are done. Once a plain copy is big enough for a second
        process (SECOND_PROCESS), they stop too and the tasks left are returned."""
        cond = threading.Condition()
        stack = list(todo)
        pending = len(stack)  # tasks on the stack or running
        error: BaseException | None = None
        stop = False  # this thread was interrupted: the others take no more tasks
        switch = False  # the tasks left go to _run_split
        next_look = SECOND_PROCESS if self.process else -1

        def work() -> None:
            nonlocal pending, error, stop, switch, next_look
            main = threading.current_thread() is this
            while True:
                if main and 0 <= next_look <= self.seen:
                    with cond:
                        whole = _whole_dirs(stack)
                        if whole >= 2 and self._cpu_spare() and \
                                whole * self.seen >= SECOND_PROCESS_LEFT * max(1, self.listed):
                            switch = stop = True
                            cond.notify_all()
                            return
                    next_look = self.seen + SPLIT
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

        this = threading.current_thread()
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
        return stack if switch else []

    def _cpu_spare(self) -> bool:
        """The machine's CPUs were at least SPARE_CPU idle, together, since the copy began
        (True where /proc/stat cannot tell)."""
        idle0, total0 = self.cpu_at_start
        idle, total = _cpu_times()
        if not total or total <= total0:
            return True
        return (os.cpu_count() or 1) * (idle - idle0) >= SPARE_CPU * (total - total0)

    def _run_split(self, todo: list[_Task]) -> None:
        """Copy the directories of todo, and those they hold, on this thread and in a second
        process, which asks for batches of whole fresh directories (a quarter of those waiting,
        from the bottom of the stack: the biggest subtrees) until none are left. Its
        subdirectories join self.dirs, its multiply-linked files this process's record of
        first names (_take_linked); its error is raised here as this thread's own would be,
        once it is stopped and reaped."""
        from llb.fsutil.copyproc import CopyProcess

        proc: CopyProcess | None = None
        try:
            try:
                proc = CopyProcess()
            except OSError:
                pass  # (no process to be had: this thread copies it all)
            while True:
                if proc is not None and not proc.finished and not proc.asked and \
                        proc.waiting(0.0 if todo else 0.05):
                    got = proc.receive()  # (raises the error it reports)
                    if got is None:
                        if proc.given:
                            raise FsError(f"the copy process for {self.dst} died",
                                          path=self.dst)
                        proc.finished = True  # (it never started: copy alone)
                        continue
                    for s, d in got[0]:
                        self.dirs.append((s, d, os.lstat(s)))
                    self._take_linked(got[1])
                    proc.asked = True
                if proc is not None and proc.asked:
                    batch = _take_whole_dirs(todo)
                    if batch or not todo:
                        proc.send(batch)
                if todo:
                    todo.extend(self.copy_dir(*todo.pop()))
                elif proc is None or proc.finished or not proc.given:
                    break  # (a process given nothing is killed: it wrote nothing)
                elif self.check is not None:
                    self.check()  # (waiting for the process)
        finally:
            if proc is not None:
                status = proc.close()
        if proc is not None and status and proc.given:
            raise FsError(f"the copy process for {self.dst} failed (status {status})",
                          path=self.dst)

    def _take_linked(self, linked: list[tuple[int, int, str, bool]]) -> None:
        """The second process's multiply-linked files, in the order it met them: a name it
        copied is the inode's first (or, when this process named one first meanwhile, a
        duplicate to make a link of at the end); a name it did not copy is a link."""
        first = self.first
        for dev, ino, dst, copied in linked:
            if copied:
                have = first.setdefault((dev, ino), dst)
                if have is not dst:
                    self.dups.append((have, dst))
            else:
                self.links.append((first[(dev, ino)], dst))

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
                    self.seen += len(items)
                    self.listed += 1
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


class PartCopy(_CopyJob):
    """The second process's share of a copy: whole fresh directories, given in batches. A
    multiply-linked file is copied at the first of its names met here, and every name of
    it reported (its other names may be anywhere in the tree: the parent, which gets them
    all, makes the links; a store's file linked outside the tree is the common case)."""

    def __init__(self, check: Callable[[], None]):
        super().__init__("", "", False, None, None, 1, check)

    def _first_name(self, st: os.stat_result, dst: str) -> bool:
        copy = self.first.setdefault((st.st_dev, st.st_ino), dst) is dst
        self.linked.append((st.st_dev, st.st_ino, dst, copy))
        return copy

    def batch(self, tasks: Sequence[tuple[str, str, str]]
              ) -> tuple[list[tuple[str, str]], list[tuple[int, int, str, bool]]]:
        """Copy the contents of each (src, dst, rel) of tasks (dst made empty by copy_tree,
        rel its path below the copy's root), one directory at a time, calling check before
        each; return the (src, dst) of the directories made (their metadata not yet applied)
        and the multiply-linked files met (see _first_name)."""
        for src, dst, rel in tasks:
            todo: list[_Task] = [(src, dst, rel, True, None)]
            while todo:
                todo.extend(self.copy_dir(*todo.pop()))
        dirs, linked = [(s, d) for s, d, _ in self.dirs], self.linked
        self.dirs, self.linked = [], []
        return dirs, linked


def _cpu_times() -> tuple[int, int]:
    """(idle, total) clock ticks of all CPUs (/proc/stat's first line; idle counts iowait
    too), or (0, 0)."""
    try:
        with open("/proc/stat", "rb") as f:
            ticks = [int(t) for t in f.readline().split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    return sum(ticks[3:5]), sum(ticks[:8])


def _is_whole_dir(task: _Task) -> bool:
    """A whole fresh directory below the root (not a part of one): a second process's kind."""
    return task[4] is None and task[3] and bool(task[2])


def _whole_dirs(stack: list[_Task]) -> int:
    """How many tasks of the stack are whole fresh directories (_is_whole_dir)."""
    return sum(1 for t in stack if _is_whole_dir(t))


def _take_whole_dirs(todo: list[_Task]) -> list[tuple[str, str, str]]:
    """A quarter of todo's whole fresh directories (at least one when two wait), from its
    bottom, taken out of it: batches shrinking with what is left, so neither process waits
    long for the other's last batch."""
    whole = [i for i, t in enumerate(todo) if _is_whole_dir(t)]
    give = set(whole[:(len(whole) + 2) // 4])
    if not give:
        return []
    batch = [(todo[i][0], todo[i][1], todo[i][2]) for i in sorted(give)]
    todo[:] = [t for i, t in enumerate(todo) if i not in give]
    return batch


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
