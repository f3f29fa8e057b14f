"""`llb dump` (show a definition as JSON or Graphviz dot) and `llb marshal` (write its bytes)."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

import click

from llb.cli.loader import load_definition
from llb import Definition, codec
from llb.describe import summarize
from llb.errors import DefinitionError

_BUILD_HELP = ("BUILD: a build file (build.py or a directory holding one), a definition file "
               "(llb's, or BuildKit's from any client), or -")


@click.command(help="Show the definition BUILD produces, like `buildctl debug dump-llb`.\n\n"
               + _BUILD_HELP)
@click.argument("build")
@click.option("--format", "fmt", type=click.Choice(["json", "dot"]), default="json",
              show_default=True, help="JSON document or Graphviz dot graph.")
@click.option("--target", metavar="NAME", help="Call NAME() in the build file instead of build().")
def dump(build: str, fmt: str, target: str | None) -> None:
    definition = load_definition(build, target)
    text = to_dot(definition) if fmt == "dot" else json.dumps(to_json(definition), indent=2)
    click.echo(text)


@click.command(help="Serialise the definition BUILD produces to a file.\n\n" + _BUILD_HELP)
@click.argument("build")
@click.option("-o", "--output", "output", required=True, metavar="FILE",
              help="Where to write the definition bytes (- for stdout).")
@click.option("--format", "fmt", type=click.Choice(["llb", "buildkit"]), default="llb",
              show_default=True,
              help="llb's msgpack, or BuildKit's LLB (protobuf) for `buildctl build` on stdin.")
@click.option("--target", metavar="NAME", help="Call NAME() in the build file instead of build().")
def marshal(build: str, output: str, fmt: str, target: str | None) -> None:
    definition = load_definition(build, target)
    data = to_buildkit(definition) if fmt == "buildkit" else definition.to_bytes()
    if output == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    from llb.solver.exporters.dest import write_file_dest

    # as a tar export's dest: a FIFO or /dev/stdout is written through, a regular file is
    # replaced by a rename (keeping its mode); a new file gets 0666 less the umask
    write_file_dest(Path(output), lambda f: f.write(data))


def to_buildkit(definition: Definition) -> bytes:
    """BuildKit Definition bytes of `definition` (llb.pb, imported only for this format)."""
    from llb.pb import encode

    encoded = encode(definition)
    if encoded.output is None:
        raise DefinitionError("the result is scratch: BuildKit's format has no op for it "
                              "(buildctl refuses an empty definition)")
    return encoded.data


# ---------------------------------------------------------------------------------- formats


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(value).decode()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def to_json(definition: Definition) -> dict[str, Any]:
    """The definition as a JSON-ready document: ops in order, with digests and metadata
    (bytes that are not UTF-8 appear as {"base64": ...})."""
    ops = []
    for digest, op in definition.ops.items():
        entry: dict[str, Any] = {"digest": digest, "kind": op.kind, "summary": summarize(op),
                                 "op": _jsonable(codec.to_wire(op))}
        meta = definition.metadata.get(digest)
        if meta is not None:
            entry["metadata"] = codec.to_wire(meta)
        ops.append(entry)
    doc: dict[str, Any] = {"output": {"digest": definition.output.digest,
                                      "index": definition.output.index}, "ops": ops}
    if definition.image is not None:
        doc["image"] = definition.image.to_wire()
    return doc


def _dot_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(definition: Definition) -> str:
    """The definition as a Graphviz digraph: one box per op, edges input -> consumer (labelled
    with the output index when it is not 0), the output op drawn with a double border."""
    lines = ["digraph llb {", "  rankdir=TB;", '  node [shape=box, fontname="monospace"];']
    for digest, op in definition.ops.items():
        meta = definition.metadata.get(digest)
        title = meta.progress_name if meta and meta.progress_name else summarize(op)
        label = f"{title}\n{op.kind} {digest[7:19]}"
        attrs = [f"label={_dot_str(label)}"]
        if digest == definition.output.digest:
            attrs.append("peripheries=2")
        lines.append(f"  {_dot_str(digest)} [{', '.join(attrs)}];")
    for digest, op in definition.ops.items():
        seen: set[tuple[str, int]] = set()
        for inp in op.inputs:
            if (inp.digest, inp.index) in seen:
                continue
            seen.add((inp.digest, inp.index))
            label = f" [label={_dot_str(str(inp.index))}]" if inp.index else ""
            lines.append(f"  {_dot_str(inp.digest)} -> {_dot_str(digest)}{label};")
    lines.append("}")
    return "\n".join(lines)
