"""The `llb` command: a click group; each command lives in its own module, named here in
`_COMMANDS` and imported only when that command runs (or help lists it)."""

from __future__ import annotations

import importlib
import os
import signal
import sys
from typing import Any

import click

from llb.errors import LLBError, NoSpaceError, is_no_space

# command name -> "module:attribute"; the module is imported on first use, so a cached
# `llb solve` does not load the modules (and dependencies) of the other commands
_COMMANDS: dict[str, str] = {
    "dump": "llb.cli.dump:dump",
    "marshal": "llb.cli.dump:marshal",
    "solve": "llb.cli.solve:solve",
    "du": "llb.cli.cache:du",
    "prune": "llb.cli.cache:prune",
}


class LLBGroup(click.Group):
    """A click group with lazily imported commands, where any LLBError becomes
    `error: <one line>` and its exit_code."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = self.commands.get(cmd_name)
        if command is None and cmd_name in _COMMANDS:
            module, _, attr = _COMMANDS[cmd_name].partition(":")
            command = getattr(importlib.import_module(module), attr)
            self.add_command(command, cmd_name)
        return command

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        # an unknown name: load every command first, so click's "Did you mean ...?" sees them all
        if args and args[0] not in self.commands and args[0] not in _COMMANDS:
            for name in _COMMANDS:
                self.get_command(ctx, name)
        return super().resolve_command(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LLBError as e:
            click.echo(f"error: {e}", err=True)
            ctx.exit(e.exit_code)
        except OSError as e:  # a full disk any command met where no path names it
            if not is_no_space(e):
                raise
            where = f" ({e.filename})" if e.filename else ""
            click.echo(f"error: no space left on device{where}", err=True)
            ctx.exit(NoSpaceError.exit_code)
        except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM/SIGHUP (llb.cli.signals)
            from llb.cli.signals import Interrupted

            if not isinstance(e, Interrupted):
                e = Interrupted(signal.SIGINT)
            click.echo(f"error: {e.message}", err=True)
            ctx.exit(e.exit_code)


@click.group(cls=LLBGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="llb", prog_name="llb")
def main() -> None:
    """llb: build graphs in Python, solved into directories and tars."""



def run() -> None:
    """The `llb` executable: `main`, then an immediate exit once stdout and stderr are
    flushed. By then every file, mount, lock and database of the command is closed, and the
    interpreter's own teardown (freeing some 200 modules) would add 10-20 ms to every
    command; an exception other than the exit itself still ends the normal way. SIGINT,
    SIGTERM and SIGHUP all stop a command cleanly (llb.cli.signals)."""
    from llb.cli.signals import install

    install()
    status: str | int | None = 0
    try:
        main()
    except SystemExit as e:
        status = e.code
    except KeyboardInterrupt as e:  # a signal outside a command (while parsing its options)
        from llb.cli.signals import Interrupted

        stop = e if isinstance(e, Interrupted) else Interrupted(signal.SIGINT)
        print(f"error: {stop.message}", file=sys.stderr)
        status = stop.exit_code
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
