"""`llb solve`: load a build, solve it under the root, export the result."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from llb.cli.loader import load_definition
from llb.cli.progress import Deferred, TtyRenderer, make_renderer
from llb.errors import LLBError, NoSpaceError, is_no_space
from llb.solver.exporters import ExportContext, export, parse_output
from llb.solver.imageresolver import PullerResolver
from llb.solver.puller import Puller
from llb.solver.solve import Solver


def resolve_root(root: str | None) -> Path:
    """--root, else $LLB_ROOT, else $XDG_DATA_HOME/llb, else ~/.local/share/llb."""
    if root:
        return Path(root)
    env = os.environ.get("LLB_ROOT")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_DATA_HOME")
    if xdg:
        return Path(xdg) / "llb"
    return Path.home() / ".local" / "share" / "llb"


def parse_locals(values: tuple[str, ...], hint: str = "--local") -> dict[str, Path]:
    """`--local NAME=PATH` (or `--oci-layout NAME=PATH`) pairs."""
    out: dict[str, Path] = {}
    for v in values:
        name, eq, path = v.partition("=")
        if not eq or not name or not path:
            raise click.BadParameter(f"expected NAME=PATH, got {v!r}", param_hint=hint)
        out[name] = Path(path)
    return out


def no_space(e: BaseException, root: Path, dest: str | None = None) -> NoSpaceError | None:
    """A full disk met outside the paths that name it themselves (a raw ENOSPC, SQLite's
    "database or disk is full"): the NoSpaceError naming the destination when the failed
    file lies there, else the root; None for any other error."""
    if isinstance(e, NoSpaceError) or not is_no_space(e):
        return None
    name = getattr(e, "filename", None)
    if dest is not None and (name is None or dest == "-" or
                             os.path.abspath(str(name)).startswith(os.path.abspath(dest))):
        if name is None or not os.path.abspath(str(name)).startswith(os.path.abspath(root)):
            return NoSpaceError.on("destination", dest)
    return NoSpaceError.on("root", os.path.abspath(root))


def fail(e: LLBError) -> None:
    """Print an LLBError as one line (plus a failed build's details) and exit with its code."""
    click.echo(f"error: {e}", err=True)
    for line in getattr(e, "details", []) or []:
        click.echo(line, err=True)
    sys.exit(e.exit_code)


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
@click.option("--progress", type=click.Choice(["auto", "tty", "plain", "json"]), default="auto",
              show_default=True, help="Progress output on stderr.")
@click.option("--no-cache", is_flag=True, help="Run every vertex, ignoring cache hits.")
@click.option("--explain", is_flag=True, help="Say why each vertex missed the cache.")
@click.option("--root", type=click.Path(file_okay=False), help="State directory (default: $LLB_ROOT).")
@click.option("--snapshotter", type=click.Choice(["auto", "overlayfs", "native"]), default="auto",
              show_default=True)
@click.option("--workers", type=click.IntRange(1, 64), default=4, show_default=True,
              help="Vertices run in parallel.")
@click.option("--backend", type=click.Choice(["local", "buildkit"]), default="local",
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
    try:
        if backend == "buildkit":
            if layouts or insecure:
                raise click.UsageError("--oci-layout and --insecure-registry apply to "
                                       "--backend local")
            _solve_on_buildkit(build, target, output, locals_, progress, no_cache, explain,
                               addr, buildctl)
            return
        if addr or buildctl:
            raise click.UsageError("--addr and --buildctl apply to --backend buildkit")
        _solve(build, target, output, locals_, layouts, insecure, progress, no_cache, explain,
               root, snapshotter, workers)
    except LLBError as e:
        fail(e)
    except Exception as e:  # noqa: BLE001 - a full disk is one line; anything else is a bug
        err = no_space(e, resolve_root(root), _dest(output))
        if err is None:
            raise
        fail(err)


def _dest(output: str | None) -> str | None:
    """The --output spec's dest (no error for a spec that does not parse: that was said)."""
    if not output:
        return None
    for part in output.split(","):
        key, _, value = part.partition("=")
        if key.strip() == "dest":
            return value
    return None


def _solve_on_buildkit(build: str, target: str | None, output: str | None,
                       locals_: tuple[str, ...], progress: str, no_cache: bool, explain: bool,
                       addr: str | None, buildctl: str | None) -> None:
    """--backend buildkit: the same definition, outputs and progress views, built by a
    buildkitd (llb.remote); --root, --snapshotter and --workers are the local solver's."""
    if explain:
        raise click.UsageError("--explain applies to --backend local")
    spec = parse_output(output) if output else None
    locals_map = parse_locals(locals_)
    from llb.cli.loader import load_definition

    definition = load_definition(build, target)
    from llb.cli.progress import make_renderer
    from llb.remote import BuildkitBackend, RemoteOutput

    backend = BuildkitBackend(addr, buildctl, progress=make_renderer(progress))
    remote_output = RemoteOutput(spec.type, spec.dest) if spec is not None else None
    backend.solve(definition, locals_map, remote_output, no_cache=no_cache)


def _solve(build: str, target: str | None, output: str | None, locals_: tuple[str, ...],
           layouts: tuple[str, ...], insecure: tuple[str, ...], progress: str, no_cache: bool,
           explain: bool, root: str | None, snapshotter: str, workers: int) -> None:
    spec = parse_output(output) if output else None
    locals_map = parse_locals(locals_)
    layout_map = parse_locals(layouts, "--oci-layout")
    root_path = resolve_root(root)
    # images named by a build file are resolved as it runs (pinned, their config taken);
    # the root is touched only if it names one
    puller = Puller(root_path, insecure=insecure)
    try:
        definition = load_definition(build, target,
                                     resolver=PullerResolver(puller, layout_map))
        renderer = make_renderer(progress)
        # the view stays open through the export, which reports as one more line
        solver = Solver(root_path, snapshotter=snapshotter, workers=workers,
                        progress=Deferred(renderer), puller=puller)
    except BaseException:
        puller.close()
        raise
    explanations: list[tuple[int, str, str]] = []
    try:
        try:
            result = solver.solve(definition, locals_map, no_cache=no_cache, explain=explain,
                                  oci_layouts=layout_map)
            explanations = result.explanations
            if spec is not None:
                ctx = ExportContext(root=root_path, image=definition.image, names=result.names,
                                    progress=solver.progress)
                export(spec, result.store, result.ref, ctx)
        finally:
            solver.close()
    finally:
        renderer.end()
    if explain and isinstance(renderer, TtyRenderer):  # plain and json say it inline
        for n, name, why in explanations:
            click.echo(f"explain: [{n}] {name}: {why}", err=True)
