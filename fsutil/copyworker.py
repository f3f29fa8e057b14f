"""The second process of a big copy_tree (see llb.fsutil.copyproc, the parent's side):
copy the batches of whole directories the parent sends, one directory at a time, and say
what was done; stop before the next directory once the parent closes the pipe (done,
failed, interrupted or dead) or on SIGTERM/SIGHUP; SIGINT (a terminal's Ctrl-C reaches the
whole process group) is the parent's to handle."""

from __future__ import annotations

import marshal
import select
import signal

from llb.fsutil.copyproc import Task, read_message, write_message
from llb.fsutil.errors import PathTooLongError
from llb.fsutil.tree import PartCopy


class _Stopped(BaseException):
    """The parent closed the pipe (or a SIGTERM came): stop before the next directory."""


_stop = False


def _on_term(signum: int, frame: object) -> None:
    global _stop
    _stop = True


def _check() -> None:
    # the parent writes only when asked: stdin readable while copying means EOF
    if _stop or select.select([0], [], [], 0)[0]:
        raise _Stopped


def main() -> None:
    """Copy the batches the parent sends on stdin until it sends [] or goes away; answer
    each on stdout."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGHUP, _on_term)
    job = PartCopy(_check)
    write_message(1, ("ready",))
    while True:
        body = read_message(0)
        if body is None:
            return
        batch: list[Task] = marshal.loads(body)
        if not batch:
            return
        try:
            dirs, linked = job.batch(batch)
        except _Stopped:
            return
        except PathTooLongError as e:
            write_message(1, ("error", "long", e.path or ""))
            return
        except OSError as e:
            where = e.filename if isinstance(e.filename, str) else batch[0][1]
            write_message(1, ("error", "os", e.errno or 0, e.strerror or str(e), where))
            return
        except Exception as e:  # noqa: BLE001 (reported to the parent, which raises it)
            write_message(1, ("error", "other", f"{type(e).__name__}: {e}", batch[0][1]))
            return
        write_message(1, ("done", dirs, linked))
