"""The `llb` command: a click group; each command lives in its own module and is added here
with one `main.add_command` line."""

from __future__ import annotations

from typing import Any

import click

from cli.cache import du, prune
from cli.dump import dump, marshal
from cli.solve import solve
from llb.errors import LLBError


class LLBGroup(click.Group):
    """A click group where any LLBError becomes `error: <one line>` and its exit_code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LLBError as e:
            click.echo(f"error: {e}", err=True)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


@click.group(cls=LLBGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="llb", prog_name="llb")
def main() -> None:
    """llb: build graphs in Python, solved into directories, tars and OCI images."""


main.add_command(dump)
main.add_command(marshal)
main.add_command(solve)
main.add_command(du)
main.add_command(prune)
