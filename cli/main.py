"""The `llb` command. `main` is the click group (cli/group.py, loaded on first use); `run`,
the executable, solves a plain `llb solve` without loading click at all (cli/quick.py)."""

from __future__ import annotations

import gc
import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from typing import Any
    from llb.cli.group import main


def __getattr__(name: str) -> Any:
    """`main`, the click group, imported on first use."""
    if name == "main":
        from llb.cli.group import main

        return main
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def run() -> None:
    """The `llb` executable: `main` (or the quick path of a plain `llb solve`), then an
    immediate exit once stdout and stderr are flushed. By then every file, mount, lock and
    database of the command is closed, and the interpreter's own teardown (freeing some 200
    modules) would add 10-20 ms to every command; an exception other than the exit itself
    still ends the normal way. SIGINT, SIGTERM and SIGHUP all stop a command cleanly
    (llb.cli.signals)."""
    from llb.cli.signals import install, settle

    install()
    status: str | int | None = 0
    try:
        quick = None
        if sys.argv[1:2] == ["solve"]:
            # the cyclic GC would walk the objects importing the solver makes again and again
            # (~8M instructions): paused until the solve starts (cli/solving.resume_gc)
            gc.disable()
            from llb.cli.quick import quick_solve

            quick = quick_solve(sys.argv[2:])
            gc.enable()
        if quick is None:
            from llb.cli.group import main as group

            group()
        else:
            status = quick
    except SystemExit as e:
        status = e.code
    except KeyboardInterrupt as e:  # a signal outside a command (while parsing its options)
        from llb.cli.signals import SIGINT, Interrupted

        stop = e if isinstance(e, Interrupted) else Interrupted(SIGINT)
        print(f"error: {stop.message}", file=sys.stderr)
        status = stop.exit_code
    settle()
    if isinstance(status, int):
        code = status
    elif status is None:
        code = 0
    else:  # sys.exit("message"): print it like Python does
        print(status, file=sys.stderr)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`llb ... | head`): nothing to save
            pass
    os._exit(code)
