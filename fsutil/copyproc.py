"""A second process for a big copy_tree: threads of one interpreter share its GIL, so a tree
of many small files is copied at one core's pace; this process (the same interpreter, its
own GIL; its side is llb.fsutil.copyworker) copies whole directories that copy_tree hands
it, on the machine's other core.

They talk through two pipes, in marshal'd messages each led by its length. The process
says ("ready",) once started, then ("done", dirs, linked) after each batch of directories
(dirs: the (src, dst) of the subdirectories it made, whose metadata the parent applies
last; linked: every name of a file with several links and whether it was copied there, for
the parent, which knows every name of the tree, to make the links) or ("error", ...) once;
the parent answers each with the next batch, [] to finish. Closing the process's stdin
(the parent is done, failed, interrupted or dead) stops it before its next directory:
never inside a file."""

from __future__ import annotations

import marshal
import os
import select
import signal
import sys

from llb.fsutil.errors import FsError, PathTooLongError

Task = tuple[str, str, str]  # (src dir, dst dir made by the parent, its path below the root)
# what the process says
Message = tuple[str | int | list[tuple[str, str]] | list[tuple[int, int, str, bool]], ...]

# the process's start: no site (the venv's .pth files), no environment (but the parent's
# -B); llb's root is put on sys.path by hand (the fsutil package needs only the standard
# library)
_BOOT = ("import sys; sys.path.insert(0, sys.argv[1]); "
         "from llb.fsutil.copyworker import main; main()")


class CopyProcess:
    """The parent's side: the process started, the batches given, its answers read."""

    def __init__(self) -> None:
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        flags = ["-I", "-S", "-B"] if sys.dont_write_bytecode else ["-I", "-S"]
        to_r, self._to = os.pipe2(os.O_CLOEXEC)
        self._from, from_w = os.pipe2(os.O_CLOEXEC)
        try:
            self.pid = os.posix_spawn(
                sys.executable, [sys.executable, *flags, "-c", _BOOT, root], os.environ,
                file_actions=[(os.POSIX_SPAWN_DUP2, to_r, 0), (os.POSIX_SPAWN_DUP2, from_w, 1)],
                setsigmask=(), setsigdef=(signal.SIGINT, signal.SIGTERM, signal.SIGHUP))
        except BaseException:
            os.close(self._to)
            os.close(self._from)
            raise
        finally:
            os.close(to_r)
            os.close(from_w)
        self.given = False  # a batch was sent: the process may be writing into the tree
        self.asked = False  # it waits for a batch
        self.finished = False  # it was sent [] (or is gone): no more messages but EOF

    def waiting(self, timeout: float = 0.0) -> bool:
        """A message (or EOF) can be read now (or within timeout seconds)."""
        return bool(select.select([self._from], [], [], timeout)[0])

    def receive(self) -> tuple[list[tuple[str, str]], list[tuple[int, int, str, bool]]] | None:
        """The next message: the (dirs, linked) of a batch done (both empty for "ready");
        None at EOF (the process is gone); the error it reports is raised here."""
        body = read_message(self._from)
        if body is None:
            return None  # (gone, maybe in the middle of a message)
        msg = marshal.loads(body)
        if msg[0] == "error":
            _raise_error(msg)
        if msg[0] == "done":
            return msg[1], msg[2]
        return [], []

    def send(self, batch: list[Task]) -> None:
        """Answer the process's last message with a batch ([]: finish)."""
        self.asked = False
        if batch:
            self.given = True
        else:
            self.finished = True
        write_message(self._to, batch)

    def close(self) -> int:
        """Stop the process (at its next directory, when it may be writing; at once when it
        was never given a directory) and reap it; its exit status. A signal's exception
        meanwhile is raised once the process is gone: none is left writing into the tree."""
        interrupted: BaseException | None = None
        if not self.given:
            _kill(self.pid)
        if self._to >= 0:
            fd, self._to = self._to, -1
            os.close(fd)  # EOF: stop
        status = 0
        while True:
            try:
                while _read_some(self._from):
                    pass  # (a message it is writing must not block it)
                status = os.waitpid(self.pid, 0)[1]
                break
            except ChildProcessError:
                break
            except BaseException as e:  # noqa: BLE001 (raised once it is reaped)
                interrupted = interrupted or e
        os.close(self._from)
        if interrupted is not None:
            raise interrupted
        return status


def _raise_error(msg: tuple[str, ...]) -> None:
    """Raise what the process reported in an ("error", kind, ...) message, as the parent's
    own copy would have: an OSError naming the path, or the typed error."""
    kind = msg[1]
    if kind == "os":
        code, text, path = msg[2:5]
        raise OSError(code, text, path)  # (OSError picks the subclass of the errno)
    if kind == "long":
        raise PathTooLongError(msg[2])
    raise FsError(f"copy process failed: {msg[2]}", path=msg[3] if len(msg) > 3 else None)


def read_message(fd: int) -> bytes | None:
    """The body of the next message on fd; None at EOF (also in the middle of one)."""
    head = _read(fd, 4)
    size = int.from_bytes(head, "little")
    body = _read(fd, size) if len(head) == 4 else b""
    return body if body and len(body) == size else None


def write_message(fd: int, obj: Message | list[Task]) -> None:
    """Write obj, marshal'd and led by its length, to fd."""
    body = marshal.dumps(obj)
    data = len(body).to_bytes(4, "little") + body
    while data:
        data = data[os.write(fd, data):]


def _read(fd: int, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = os.read(fd, n - got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _read_some(fd: int) -> bytes:
    return os.read(fd, 1 << 16)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
