"""`llb solve`: load a build, solve it under the root, export the result."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import NamedTuple

import click

from llb.errors import LLBError


class OutputSpecError(LLBError):
    """A bad `--output` spec: unknown type, missing dest, a destination that cannot be written."""


class OutputSpec(NamedTuple):
    """A parsed `--output`: type ("local" | "tar") and dest (a path, or "-" for stdout)."""

    type: str
    dest: str


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


def parse_output(spec: str) -> OutputSpec:
    """Parse and check `type=local,dest=DIR` / `type=tar,dest=FILE|-` before anything runs."""
    fields: dict[str, str] = {}
    for part in spec.split(","):
        if not part:
            continue
        key, eq, value = part.partition("=")
        if not eq:
            raise OutputSpecError(f"--output {spec}: expected key=value, got {part!r}")
        fields[key.strip()] = value
    typ = fields.pop("type", None)
    if typ is None:
        raise OutputSpecError(f"--output {spec}: missing type= (local or tar)")
    if typ in ("oci", "image"):
        from llb.solver.errors import UnsupportedError

        raise UnsupportedError(f"--output type={typ}: not supported yet")
    if typ not in ("local", "tar"):
        raise OutputSpecError(f"--output {spec}: unknown output type {typ!r} (expected local or tar)")
    dest = fields.pop("dest", None)
    if not dest:
        raise OutputSpecError(f"--output {spec}: type={typ} needs dest=")
    if fields:
        raise OutputSpecError(f"--output {spec}: unknown option {sorted(fields)[0]!r} for type={typ}")
    if typ == "local":
        _check_dir_dest(dest)
    elif dest != "-":
        _check_file_dest(dest)
    return OutputSpec(typ, dest)


def _check_dir_dest(dest: str) -> None:
    """Prove dest can be a directory we write into: create what is missing, create and remove
    a probe file, then remove what was created (nothing is left behind either way)."""
    p = Path(dest)
    if p.exists() and not p.is_dir():
        raise OutputSpecError(f"--output dest={dest}: exists and is not a directory", path=dest)
    missing: list[Path] = []
    probe = p
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    if not probe.is_dir():
        raise OutputSpecError(f"--output dest={dest}: cannot write there ({probe} is not a directory)",
                              path=dest)
    created: list[Path] = []
    try:
        for d in reversed(missing):
            os.mkdir(d)
            created.append(d)
        _probe_file(p / f".llb-probe-{os.getpid()}", dest)
    except OSError as e:
        raise OutputSpecError(f"--output dest={dest}: cannot write there ({e.strerror})",
                              path=dest) from None
    finally:
        for d in reversed(created):
            try:
                os.rmdir(d)
            except OSError:
                pass


def _probe_file(path: Path, dest: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    os.close(fd)
    os.unlink(path)


def _check_file_dest(dest: str) -> None:
    """Prove dest can be written as a file: open an existing one for writing (not truncated),
    or create and remove it."""
    p = Path(dest)
    if p.is_dir():
        raise OutputSpecError(f"--output dest={dest}: is a directory", path=dest)
    parent = p.parent
    if not parent.is_dir():
        raise OutputSpecError(f"--output dest={dest}: directory {parent} does not exist", path=dest)
    try:
        if p.exists():
            os.close(os.open(p, os.O_WRONLY | os.O_CLOEXEC))
        else:
            _probe_file(p, dest)
    except OSError as e:
        raise OutputSpecError(f"--output dest={dest}: cannot write there ({e.strerror})",
                              path=dest) from None


def parse_locals(values: tuple[str, ...]) -> dict[str, Path]:
    """`--local NAME=PATH` pairs."""
    out: dict[str, Path] = {}
    for v in values:
        name, eq, path = v.partition("=")
        if not eq or not name or not path:
            raise click.BadParameter(f"expected NAME=PATH, got {v!r}", param_hint="--local")
        out[name] = Path(path)
    return out


def export(spec: OutputSpec, store, ref) -> None:
    """Write the result as the output spec says."""
    if spec.type == "local":
        from llb.solver.exporters.local import export_local

        export_local(store, ref, Path(spec.dest))
        return
    from llb.solver.exporters.tar import export_tar

    if spec.dest == "-":
        export_tar(store, ref, sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return
    dest = Path(spec.dest)
    tmp = dest.with_name(f".{dest.name}.llb-tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            export_tar(store, ref, f)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


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
@click.option("--progress", type=click.Choice(["auto", "tty", "plain", "json"]), default="auto",
              show_default=True, help="Progress output on stderr.")
@click.option("--no-cache", is_flag=True, help="Run every vertex, ignoring cache hits.")
@click.option("--explain", is_flag=True, help="Say why each vertex missed the cache.")
@click.option("--root", type=click.Path(file_okay=False), help="State directory (default: $LLB_ROOT).")
@click.option("--snapshotter", type=click.Choice(["auto", "overlayfs", "native"]), default="auto",
              show_default=True)
@click.option("--workers", type=click.IntRange(1, 64), default=4, show_default=True,
              help="Vertices run in parallel.")
def solve(build: str, target: str | None, output: str | None, locals_: tuple[str, ...],
          progress: str, no_cache: bool, explain: bool, root: str | None, snapshotter: str,
          workers: int) -> None:
    """Solve BUILD (a build file, a serialised definition, or - for stdin) and export it."""
    try:
        _solve(build, target, output, locals_, progress, no_cache, explain, root, snapshotter,
               workers)
    except LLBError as e:
        fail(e)


def _solve(build, target, output, locals_, progress, no_cache, explain, root, snapshotter,
           workers) -> None:
    spec = parse_output(output) if output else None
    locals_map = parse_locals(locals_)
    from llb.cli.loader import load_definition

    definition = load_definition(build, target)
    from llb.cli.progress import make_renderer
    from llb.solver.solve import Solver

    renderer = make_renderer(progress)
    solver = Solver(resolve_root(root), snapshotter=snapshotter, workers=workers, progress=renderer)
    try:
        result = solver.solve(definition, locals_map, no_cache=no_cache, explain=explain)
        from llb.cli.progress import TtyRenderer

        if explain and isinstance(renderer, TtyRenderer):  # plain and json say it inline
            for n, name, why in result.explanations:
                click.echo(f"explain: [{n}] {name}: {why}", err=True)
        if spec is not None:
            export(spec, result.store, result.ref)
    finally:
        solver.close()
