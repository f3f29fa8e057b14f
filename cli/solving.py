"""What `llb solve` does once its arguments are read: load the build, solve it under the root
(or on a buildkitd), export the result. Shared by the click command (cli/solve.py) and the
quick path of the `llb` executable (cli/quick.py), so it imports no click: click is loaded
only to report a usage error, which ends the command anyway."""

from __future__ import annotations

import gc
import os
import sys

from llb.cli.loader import load_definition
from llb.cli.progress import Deferred, TtyRenderer, make_renderer
from llb.errors import LLBError, NoSpaceError, is_no_space
from llb.solver.exporters import ExportContext, export, parse_output
from llb.solver.imageresolver import PullerResolver
from llb.solver.puller import Puller
from llb.solver.solve import Solver

# the choices and defaults of `llb solve`'s options (the click command and the quick path)
PROGRESS_MODES = ("auto", "tty", "plain", "json")
SNAPSHOTTERS = ("auto", "overlayfs", "native")
BACKENDS = ("local", "buildkit")
WORKERS_MIN, WORKERS_MAX, WORKERS_DEFAULT = 1, 64, 4


def resolve_root(root: str | None) -> str:
    """--root, else $LLB_ROOT, else $XDG_DATA_HOME/llb, else ~/.local/share/llb."""
    if root:
        return root
    env = os.environ.get("LLB_ROOT")
    if env:
        return env
    xdg = os.environ.get("XDG_DATA_HOME")
    if xdg:
        return os.path.join(xdg, "llb")
    return os.path.join(os.path.expanduser("~"), ".local", "share", "llb")


def is_name_path(value: str) -> bool:
    """True for a `NAME=PATH` pair with both parts given (what --local takes)."""
    name, eq, path = value.partition("=")
    return bool(eq and name and path)


def parse_locals(values: tuple[str, ...], hint: str = "--local") -> dict[str, str]:
    """`--local NAME=PATH` (or `--oci-layout NAME=PATH`) pairs; click.BadParameter for
    another form."""
    out: dict[str, str] = {}
    for v in values:
        if not is_name_path(v):
            import click

            raise click.BadParameter(f"expected NAME=PATH, got {v!r}", param_hint=hint)
        name, _, path = v.partition("=")
        out[name] = path
    return out


def no_space(e: BaseException, root: str | os.PathLike[str], dest: str | None = None) -> NoSpaceError | None:
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


def resume_gc() -> None:
    """Turn the cyclic GC back on where the executable paused it for its imports (cli/main),
    the objects made so far frozen (modules, classes, the definition: they live as long as
    the command), so that later collections do not walk them again."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def fail(e: LLBError) -> None:
    """Print an LLBError as one line (plus a failed build's details) and exit with its code."""
    import click

    click.echo(f"error: {e}", err=True)
    for line in getattr(e, "details", []) or []:
        click.echo(line, err=True)
    sys.exit(e.exit_code)


def _usage_error(message: str) -> Exception:
    import click

    return click.UsageError(message)


def solve_command(build: str, target: str | None, output: str | None,
                  locals_: tuple[str, ...], layouts: tuple[str, ...], insecure: tuple[str, ...],
                  progress: str, no_cache: bool, explain: bool, root: str | None,
                  snapshotter: str, workers: int, backend: str, addr: str | None,
                  buildctl: str | None) -> None:
    """`llb solve` with its options read: an LLBError (or a full disk) is one line and its
    exit status (SystemExit)."""
    try:
        if backend == "buildkit":
            _solve_on_buildkit(build, target, output, locals_, layouts, insecure, progress,
                               no_cache, explain, root, addr, buildctl)
            return
        if addr or buildctl:
            raise _usage_error("--addr and --buildctl apply to --backend buildkit")
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
                       locals_: tuple[str, ...], layouts: tuple[str, ...],
                       insecure: tuple[str, ...], progress: str, no_cache: bool, explain: bool,
                       root: str | None, addr: str | None, buildctl: str | None) -> None:
    """--backend buildkit: the same definition, outputs and progress views, built by a
    buildkitd (llb.remote). Images and OCI layouts a build file names are resolved here, as
    the Go client's meta resolver does (pinned by digest, their config taken), through the
    root's content store; --snapshotter and --workers are the local solver's."""
    if explain:
        raise _usage_error("--explain applies to --backend local")
    from pathlib import Path

    from llb.remote import BuildkitBackend
    from llb.remote.outputs import check_output

    spec = parse_output(output) if output else None
    if spec is not None:
        check_output(spec)
    locals_map = parse_locals(locals_)
    layout_map = parse_locals(layouts, "--oci-layout")
    backend = BuildkitBackend(addr, buildctl, progress=make_renderer(progress))
    puller = Puller(resolve_root(root), insecure=insecure)
    try:
        resolver = PullerResolver(puller, layout_map)
        definition = load_definition(build, target, resolver=resolver)
        backend.solve(definition, {k: Path(v) for k, v in locals_map.items()}, spec,
                      no_cache=no_cache,
                      oci_layouts={k: Path(v) for k, v in layout_map.items()}, resolver=resolver)
    finally:
        puller.close()


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
            resume_gc()
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
        import click

        for n, name, why in explanations:
            click.echo(f"explain: [{n}] {name}: {why}", err=True)
