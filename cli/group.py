"""The `llb` click group: each command lives in its own module, named here in `_COMMANDS`
and imported only when that command runs (or help lists it)."""

from __future__ import annotations

import importlib
from typing import Any

import click

from llb.cli.report import error_report
from llb.errors import LLBError

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

    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        # a signal while the group's own options are parsed: reported as in a command, not
        # as click's "Aborted!" and status 1
        try:
            return super().make_context(info_name, args, parent, **extra)
        except KeyboardInterrupt as e:
            raise click.exceptions.Exit(_report(e)) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            super().invoke(ctx)
            # the command's end: exit here, where a signal that comes now is still reported
            # as one (click's own exit after invoke would say "Aborted!", status 1)
            ctx.exit(0)
        except (LLBError, OSError, KeyboardInterrupt) as e:
            ctx.exit(_report(e))


def _report(e: BaseException) -> int:
    """Print e's `error: ...` line and return its exit status; re-raise what has none."""
    report = error_report(e)
    if report is None:
        raise e
    click.echo(report[0], err=True)
    return report[1]


@click.group(cls=LLBGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="llb", prog_name="llb")
def main() -> None:
    """llb: build graphs in Python, solved into directories and tars."""
