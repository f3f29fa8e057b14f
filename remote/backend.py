"""`llb solve --backend buildkit`: a definition solved by a buildkitd through `buildctl build`.

The definition is marshalled as BuildKit's LLB (llb.pb: the same ops, hence the same cache
keys, as BuildKit's Go client would send), with a fresh `local.unique` per solve as the Go
client draws one, and each op named `[llb K] <llb's name>` so the progress buildctl prints
maps back to llb's vertices (remote.plain). `--local` directories, OCI layouts
(`--oci-layout`: BuildKit reads them from the client's session), the output (remote.outputs)
and `--no-cache` are passed through to buildctl; the result is written by buildctl itself.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from llb import ops as _ops
from llb.definition import Definition
from llb.remote.errors import BackendError
from llb.resolver import Resolver
from llb.remote.outputs import IMAGE_TYPES, buildctl_output, check_output
from llb.remote.plain import PlainProgress, Vertex
from llb.solver.errors import InputError, OutputSpecError, SolveError
from llb.solver.exporters import OutputSpec
from llb.solver.names import vertex_name
from llb.solver.progress import Progress, ProgressSink

# an empty tar archive: two zero blocks (what a tar of scratch holds)
_EMPTY_TAR = bytes(1024)


class BuildkitBackend:
    """A buildkitd at `addr` (default $BUILDKIT_HOST) reached through `buildctl` (default: the
    one on PATH); progress events go to `progress` like the local solver's."""

    def __init__(self, addr: str | None = None, buildctl: str | None = None,
                 progress: ProgressSink | None = None):
        self.addr = addr or os.environ.get("BUILDKIT_HOST", "")
        if not self.addr:
            raise BackendError("--backend buildkit needs --addr ADDR or $BUILDKIT_HOST "
                               "(e.g. unix:///run/buildkit/buildkitd.sock)")
        found = shutil.which(buildctl or "buildctl")
        if found is None:
            raise BackendError(f"{buildctl}: not an executable" if buildctl else
                               "buildctl not found on PATH (give --buildctl PATH)",
                               path=buildctl)
        self.buildctl = found
        self.progress = Progress(progress)

    def solve(self, definition: Definition, locals: Mapping[str, Path],
              output: OutputSpec | None = None, *, no_cache: bool = False,
              oci_layouts: Mapping[str, Path] | None = None,
              resolver: Resolver | None = None) -> None:
        """Build `definition` on the daemon and write its result to `output` (a spec
        parse_output checked). `oci_layouts` maps the `--oci-layout` names of layout
        sources; `resolver` pins a layout named by tag (BuildKit reads them by digest only).
        SolveError (exit 1) names the failing vertex, its command and the tail of
        its log."""
        from llb.pb import encode

        definition.validate()
        _check_locals(definition, locals)
        if output is not None:
            check_output(output)
        encoded = encode(definition, local_unique=secrets.token_hex(13)[:25],
                         layout_pins=_layout_pins(definition, resolver))
        layouts = _layout_dirs(encoded.layouts, oci_layouts or {})
        if encoded.output is None and output is not None and output.type in IMAGE_TYPES:
            raise OutputSpecError(f"--output {output.text}: the result is empty (scratch) and "
                                  "buildctl cannot send an empty definition to build an image "
                                  "of; use --backend local")
        vertices, marks = _vertices(definition, encoded.vertex, encoded.ops)
        self.progress.begin(len(vertices))
        parser = PlainProgress(vertices, marks, self.progress)
        try:
            if encoded.output is None:  # scratch: nothing for buildkitd to do
                _write_empty(output)
                parser.finish(True)
                return
            names = {digest: f"[llb {k}] {marks[k][0].name}" for k, digest in
                     enumerate(encoded.ops, 1)}
            argv = self._argv(definition, locals, layouts, output, no_cache)
            code = _run(argv, encoded.with_names(names), parser, output)
            parser.finish(code == 0)
            if code != 0:
                raise _failure(definition, parser, code, self.addr)
        finally:
            self.progress.end()

    def _argv(self, definition: Definition, locals: Mapping[str, Path],
              layouts: Mapping[str, Path], output: OutputSpec | None,
              no_cache: bool) -> list[str]:
        argv = [self.buildctl, "--addr", self.addr, "build", "--progress", "plain"]
        for name in sorted(_local_names(definition)):
            argv += ["--local", f"{name}={os.fspath(locals[name])}"]
        for store, path in sorted(layouts.items()):
            argv += ["--oci-layout", f"{store}={os.path.abspath(path)}"]
        if output is not None:
            argv += ["--output", buildctl_output(output, definition.image)]
        if no_cache:
            argv.append("--no-cache")
        if any(isinstance(op, _ops.ExecOp) and op.network == _ops.NETWORK_HOST
               for op in definition.ops.values()):
            argv += ["--allow", "network.host"]
        return argv


def _local_names(definition: Definition) -> set[str]:
    return {op.identifier[len("local://"):] for op in definition.ops.values()
            if isinstance(op, _ops.SourceOp) and op.identifier.startswith("local://")}


def _check_locals(definition: Definition, locals: Mapping[str, Path]) -> None:
    """The same checks the local solver makes before anything runs."""
    for name in sorted(_local_names(definition)):
        path = locals.get(name)
        if path is None:
            raise InputError(f"no --local mapping for local source {name!r} "
                             f"(pass --local {name}=PATH)")
        if not Path(path).is_dir():
            raise InputError(f"--local {name}={path}: not a directory", path=os.fspath(path))


def _layout_pins(definition: Definition, resolver: Resolver | None) -> dict[str, str]:
    """oci-layout identifier named by tag -> the digest the tag names in the layout now."""
    pins: dict[str, str] = {}
    if resolver is None:
        return pins
    for op in definition.ops.values():
        if not isinstance(op, _ops.SourceOp) or not op.identifier.startswith("oci-layout://"):
            continue
        locator = op.identifier[len("oci-layout://"):]
        if "@" in locator.rpartition("/")[2]:
            continue  # pinned already
        where, _, tag = locator.rpartition(":")
        platform = dict(op.attrs).get("platform")
        pins[op.identifier] = resolver.resolve_layout(where, tag, None, platform).digest
    return pins


def _layout_dirs(stores: Mapping[str, str], oci_layouts: Mapping[str, Path]) -> dict[str, Path]:
    """The directory of each layout store the definition reads (store ID -> path): a name
    mapped with --oci-layout, or an absolute path. buildctl attaches directories only."""
    out: dict[str, Path] = {}
    for store, where in sorted(stores.items()):
        if where.startswith("/"):
            path = Path(where)
        elif where in oci_layouts:
            path = Path(oci_layouts[where])
        else:
            raise InputError(f"no --oci-layout mapping for layout {where!r} (pass "
                             f"--oci-layout {where}=PATH)")
        if not path.is_dir():
            what = "not found" if not path.exists() else "a tar, not a directory"
            raise InputError(f"OCI layout {path}: {what} (buildctl --oci-layout attaches a "
                             "layout directory; unpack a tar with `tar -x`)", path=str(path))
        out[store] = path
    return out


def _vertices(definition: Definition, bk_of: dict[str, str | None], bk_ops: list[str]
              ) -> tuple[list[Vertex], dict[int, list[Vertex]]]:
    """llb's vertices (named as the local solver names them) and, for each BuildKit op K
    (1-based, definition order), the llb vertices it stands for."""
    k_of = {digest: k for k, digest in enumerate(bk_ops, 1)}
    vertices: list[Vertex] = []
    marks: dict[int, list[Vertex]] = {}
    for index, (digest, op) in enumerate(definition.ops.items(), 1):
        meta = definition.metadata.get(digest)
        name = meta.progress_name if meta is not None and meta.progress_name else vertex_name(op)
        v = Vertex(digest, name, index)
        vertices.append(v)
        bk = bk_of.get(digest)
        if bk is not None:
            marks.setdefault(k_of[bk], []).append(v)
    return vertices, marks  # inputs come first: an op precedes the merges/diffs standing for it


def _run(argv: list[str], data: bytes, parser: PlainProgress, output: OutputSpec | None) -> int:
    """Run buildctl with the definition on stdin, feeding its stderr to `parser`."""
    to_stdout = output is not None and output.dest == "-"
    stdout: int | IO[bytes] = sys.stdout.buffer if to_stdout else subprocess.DEVNULL
    if to_stdout:
        sys.stdout.flush()
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=stdout,
                                stderr=subprocess.PIPE)
    except OSError as e:
        raise BackendError(f"{argv[0]}: cannot run: {e.strerror}", path=argv[0]) from None
    assert proc.stdin is not None and proc.stderr is not None
    writer = threading.Thread(target=_write_stdin, args=(proc.stdin, data), daemon=True)
    writer.start()
    for raw in proc.stderr:
        parser.feed(raw.decode("utf-8", "replace").rstrip("\r\n"))
    writer.join()
    return proc.wait()


def _write_stdin(pipe: IO[bytes], data: bytes) -> None:
    try:
        pipe.write(data)
        pipe.close()
    except OSError:  # buildctl gave up before reading (it says why on stderr)
        pass


def _failure(definition: Definition, parser: PlainProgress, code: int, addr: str) -> Exception:
    """SolveError for the vertex that failed; BackendError when none ever started (no
    daemon at addr, a refused definition)."""
    why = parser.error_line or f"buildctl exited with status {code}"
    if not parser.failed:
        if not parser.reported:
            return BackendError(f"buildkit at {addr}: {why}")
        return SolveError(f"buildkit: {why}")
    v = parser.failed[0]
    op = definition.ops[v.digest]
    # the command as the local solver says it
    command = " ".join(op.args) if isinstance(op, _ops.ExecOp) else None
    return SolveError(f"[{v.index}/{len(parser.vertices)}] {v.name}: {v.error}", vertex=v.digest,
                      name=v.name, command=command, log_tail=v.log)


def _write_empty(output: OutputSpec | None) -> None:
    """The export of scratch, which buildctl cannot be asked for (it refuses an empty
    definition): an empty directory or an empty tar."""
    if output is None:
        return
    if output.type == "local":
        os.makedirs(output.dest, exist_ok=True)
    elif output.dest == "-":
        sys.stdout.buffer.write(_EMPTY_TAR)
        sys.stdout.buffer.flush()
    else:
        Path(output.dest).write_bytes(_EMPTY_TAR)
