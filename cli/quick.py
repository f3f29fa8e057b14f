"""A plain `llb solve` read without click. Importing click (and the inspect, uuid, datetime
and gettext modules it pulls in) cost a cached solve more than solving it; the `llb`
executable reads the command line here when it is one click would read the same way (known
options in their usual forms, valid values), and hands anything else to click: help, a typo,
a bad value, `--backend buildkit`, shell completion. What runs next, and what an error that
escapes it prints, is the click command's own (cli/solving.py, cli/report.py)."""

from __future__ import annotations

import errno
import os
import stat
import sys

from llb.cli.solving import (
    PROGRESS_MODES, SNAPSHOTTERS, WORKERS_DEFAULT, WORKERS_MAX, WORKERS_MIN, is_name_path,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from typing import Any

# option -> parameter of solve_command; "-o" is --output's short form
VALUE_OPTIONS = {
    "--target": "target", "--output": "output", "-o": "output", "--local": "locals_",
    "--oci-layout": "layouts", "--insecure-registry": "insecure", "--progress": "progress",
    "--root": "root", "--snapshotter": "snapshotter", "--workers": "workers",
}
MULTIPLE = frozenset({"locals_", "layouts", "insecure"})
FLAGS = {"--no-cache": "no_cache", "--explain": "explain"}


def solve_params(args: list[str]) -> dict[str, Any] | None:
    """solve_command's parameters for the arguments after `solve`, or None where click must
    read them (it may say something, or read them otherwise than here)."""
    if any(k.startswith("_") and k.endswith("_COMPLETE") for k in os.environ):
        return None  # click's shell completion
    params: dict[str, Any] = {"target": None, "output": None, "root": None, "progress": "auto",
                              "snapshotter": "auto", "workers": WORKERS_DEFAULT,
                              "no_cache": False, "explain": False}
    lists: dict[str, list[str]] = {name: [] for name in MULTIPLE}
    given: set[str] = set()
    build = None
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "-" or not arg.startswith("-"):
            if build is not None:
                return None
            build = arg
            continue
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            explicit = bool(eq)
        else:
            name, value = arg[:2], arg[2:]
            explicit = bool(value)
        if name in FLAGS and not explicit:
            params[FLAGS[name]] = True
            continue
        param = VALUE_OPTIONS.get(name)
        if param is None:
            return None
        if not explicit:
            if i >= len(args) or args[i].startswith("-"):
                return None
            value = args[i]
            i += 1
        if param in MULTIPLE:
            lists[param].append(value)
        elif param in given:
            return None
        else:
            given.add(param)
            params[param] = value
    if build is None or not _valid(params, lists):
        return None
    params["workers"] = int(params["workers"])
    params.update({name: tuple(values) for name, values in lists.items()})
    params["build"] = build
    return params


def _valid(params: dict[str, Any], lists: dict[str, list[str]]) -> bool:
    """The values click would accept as they are."""
    if params["progress"] not in PROGRESS_MODES or params["snapshotter"] not in SNAPSHOTTERS:
        return False
    workers = str(params["workers"])
    if not (workers.isascii() and workers.isdigit()
            and WORKERS_MIN <= int(workers) <= WORKERS_MAX):
        return False
    if not all(is_name_path(v) for v in (*lists["locals_"], *lists["layouts"])):
        return False
    root = params["root"]
    if root is not None:  # click.Path(file_okay=False): not a file, readable if there
        try:
            st = os.stat(root)
        except OSError:
            return True
        if stat.S_ISREG(st.st_mode) or not os.access(root, os.R_OK):
            return False
    return True


def quick_solve(args: list[str]) -> int | None:
    """Run `llb solve ARGS` when solve_params reads them, and return its exit status; None
    (having done nothing) where click must read them."""
    params = solve_params(args)
    if params is None:
        return None
    from llb.cli.report import error_report
    from llb.cli.solving import solve_command

    try:
        solve_command(**params, backend="local", addr=None, buildctl=None)
    except (Exception, KeyboardInterrupt) as e:
        # as the click group (cli/group.py) and click's own main() would have ended
        report = error_report(e)
        if report is not None:
            _echo(report[0])
            return report[1]
        if isinstance(e, OSError) and e.errno == errno.EPIPE:
            return 1
        if isinstance(e, EOFError):
            _echo("")
            _echo("Aborted!")
            return 1
        click = sys.modules.get("click")
        if click is not None and isinstance(e, click.ClickException):
            e.show()
            return e.exit_code
        raise
    return 0


def _echo(line: str) -> None:
    import click

    click.echo(line, err=True)
