"""What the `llb` command says about an exception that escaped a command: one line and an
exit status for llb's errors, a full disk and a stopping signal; anything else is a bug and
keeps its traceback. Shared by the click group (cli/group.py) and the quick path
(cli/quick.py)."""

from __future__ import annotations

from llb.errors import LLBError, NoSpaceError, is_no_space


def error_report(e: BaseException) -> tuple[str, int] | None:
    """(the `error: ...` line, the exit status) for e, or None for an exception to re-raise."""
    if isinstance(e, LLBError):
        return f"error: {e}", e.exit_code
    if isinstance(e, OSError):  # a full disk any command met where no path names it
        if not is_no_space(e):
            return None
        where = f" ({e.filename})" if e.filename else ""
        return f"error: no space left on device{where}", NoSpaceError.exit_code
    if isinstance(e, KeyboardInterrupt):  # Ctrl-C, or SIGTERM/SIGHUP (llb.cli.signals)
        from llb.cli.signals import SIGINT, Interrupted

        stop = e if isinstance(e, Interrupted) else Interrupted(SIGINT)
        return f"error: {stop.message}", stop.exit_code
    return None
