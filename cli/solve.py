"""`llb solve` as a click command: its options and help. What it does is cli/solving.py's
(the `llb` executable reads a plain `llb solve` without click: cli/quick.py)."""

from __future__ import annotations

import click

from llb.cli.solving import (
    BACKENDS, PROGRESS_MODES, SNAPSHOTTERS, WORKERS_DEFAULT, WORKERS_MAX, WORKERS_MIN,
    solve_command,
)


@click.command("solve")
@click.argument("build")
@click.option("--target", help="Call this function of the build file instead of build().")
@click.option("--output", "-o", "output", metavar="SPEC",
              help="type=local,dest=DIR | type=tar,dest=FILE|-")
@click.option("--local", "locals_", multiple=True, metavar="NAME=PATH",
              help="Directory for llb.local(NAME); repeatable.")
@click.option("--oci-layout", "layouts", multiple=True, metavar="NAME=PATH",
              help="OCI image layout (directory or tar) for llb.oci_layout(NAME); repeatable.")
@click.option("--insecure-registry", "insecure", multiple=True, metavar="HOST",
              help="Pull from this registry over plain HTTP (localhost and 127.0.0.1 always "
                   "are); repeatable.")
@click.option("--progress", type=click.Choice(PROGRESS_MODES), default="auto",
              show_default=True, help="Progress output on stderr.")
@click.option("--no-cache", is_flag=True, help="Run every vertex, ignoring cache hits.")
@click.option("--explain", is_flag=True, help="Say why each vertex missed the cache.")
@click.option("--root", type=click.Path(file_okay=False), help="State directory (default: $LLB_ROOT).")
@click.option("--snapshotter", type=click.Choice(SNAPSHOTTERS), default="auto",
              show_default=True)
@click.option("--workers", type=click.IntRange(WORKERS_MIN, WORKERS_MAX),
              default=WORKERS_DEFAULT, show_default=True,
              help="Vertices run in parallel.")
@click.option("--backend", type=click.Choice(BACKENDS), default="local",
              show_default=True,
              help="Solve here (local), or on a buildkitd through buildctl (buildkit).")
@click.option("--addr", metavar="ADDR",
              help="buildkitd address for --backend buildkit (default: $BUILDKIT_HOST).")
@click.option("--buildctl", "buildctl", metavar="PATH",
              help="buildctl for --backend buildkit (default: the one on PATH).")
def solve(build: str, target: str | None, output: str | None, locals_: tuple[str, ...],
          layouts: tuple[str, ...], insecure: tuple[str, ...], progress: str, no_cache: bool,
          explain: bool, root: str | None, snapshotter: str, workers: int, backend: str,
          addr: str | None, buildctl: str | None) -> None:
    """Solve BUILD (a build file, a serialised definition, or - for stdin) and export it."""
    solve_command(build, target, output, locals_, layouts, insecure, progress, no_cache,
                  explain, root, snapshotter, workers, backend, addr, buildctl)
