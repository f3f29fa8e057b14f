"""Definitions: a build graph on the wire.

A Definition holds its ops in topological order (inputs first), keyed by digest, the
metadata beside them and the output. Its bytes are canonical msgpack:

    {"image": {...},                                                      # optional
     "metadata": {digest: {description, ignore_cache, progress_name}},   # non-default only
     "ops": [[digest, op bytes], ...],                                     # topological
     "output": {"digest": ..., "index": ...},
     "version": 1}

so identical programs give identical bytes, and `from_bytes` accepts only bytes that
`to_bytes` would produce again exactly. "image" is the output's image config
(llb.imagemeta), present only when something is set: metadata, like "metadata", that no
digest depends on; definitions without it read as they always did.
"""

from __future__ import annotations

import gc
from collections.abc import Mapping

import msgpack

from llb import codec, validate
from llb.codec import FieldError, digest_of, op_digest
from llb.errors import DefinitionError
from llb.imagemeta import ImageMeta
from llb.ops import Input, Op, OpMetadata

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from typing import Any
    import networkx as nx

__all__ = ["Definition", "VERSION", "op_digest", "op_outputs"]

VERSION = 1
MAX_DEFINITION_BYTES = 1 << 30
MAX_OPS = 1 << 20
_DEFAULT_META = OpMetadata()
_TOP_KEYS = ["metadata", "ops", "output", "version"]
_TOP_KEYS_IMAGE = ["image", *_TOP_KEYS]

op_outputs = validate.outputs_of


class Definition:
    """A serialisable build graph: `ops` (digest -> op, inputs first), `metadata` (digest ->
    OpMetadata), `output` (the Input the build produces) and `image` (the output's image
    config for image exports, None when nothing is set)."""

    __slots__ = ("ops", "metadata", "output", "image", "_op_bytes", "_checked")

    def __init__(self, ops: Mapping[str, Op], metadata: Mapping[str, OpMetadata] | None,
                 output: Input, *, image: ImageMeta | None = None,
                 _op_bytes: dict[str, bytes] | None = None, _checked: bool = False):
        self.ops: dict[str, Op] = dict(ops)
        self.metadata: dict[str, OpMetadata] = dict(metadata or {})
        self.output = output
        self.image = image
        self._op_bytes = _op_bytes if _op_bytes is not None else {}
        self._checked = _checked

    # ------------------------------------------------------------------ views

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Definition):
            return NotImplemented
        return (self.output == other.output and list(self.ops.items()) == list(other.ops.items())
                and self.metadata == other.metadata and self.image == other.image)

    def __repr__(self) -> str:
        return f"Definition({len(self.ops)} ops, output={self.output.digest}[{self.output.index}])"

    @property
    def head(self) -> Op:
        """The op that produces the output."""
        return self.ops[self.output.digest]

    def op_bytes(self, digest: str) -> bytes:
        """The canonical encoding of the op with `digest`."""
        data = self._op_bytes.get(digest)
        if data is None:
            data = self._op_bytes[digest] = codec.encode_op(self.ops[digest])
        return data

    def to_graph(self) -> nx.DiGraph[str]:
        """A networkx DiGraph over op digests; edges run input -> consumer.

        Nodes carry `op`, `kind` and `metadata`; edges carry `index` (the output consumed)
        and `positions` (where the consumer lists that input). graph.graph["output"] is the
        output Input.
        """
        import networkx as nx  # imported here: a cached solve never needs it (startup time)

        g: nx.DiGraph[str] = nx.DiGraph(output=self.output)
        for digest, op in self.ops.items():
            g.add_node(digest, op=op, kind=op.kind, metadata=self.metadata.get(digest, _DEFAULT_META))
            for pos, inp in enumerate(op.inputs):
                if g.has_edge(inp.digest, digest):
                    g.edges[inp.digest, digest]["positions"].append(pos)
                else:
                    g.add_edge(inp.digest, digest, index=inp.index, positions=[pos])
        return g

    # ------------------------------------------------------------------ marshal

    def validate(self) -> None:
        """Raise DefinitionError unless this definition is complete and consistent."""
        if self._checked:
            return
        for digest, op in self.ops.items():
            _checked_op(digest, op)
            if digest != op_digest(op):
                raise DefinitionError(f"op {digest} does not match its content", vertex=digest)
        for digest, meta in self.metadata.items():
            if type(meta) is not OpMetadata:
                raise DefinitionError(f"metadata for {digest} is not an OpMetadata", vertex=digest)
            validate.check_metadata(meta)
        if self.image is not None:
            if type(self.image) is not ImageMeta:
                raise DefinitionError("definition image config is not an llb.imagemeta.ImageMeta")
            self.image.check()
        _check_graph(list(self.ops), self.ops, self.metadata, self.output)
        self._checked = True

    def to_bytes(self) -> bytes:
        """Canonical msgpack bytes of this definition."""
        self.validate()
        metadata = {d: codec.to_wire(self.metadata[d]) for d in sorted(self.metadata)
                    if self.metadata[d] != _DEFAULT_META}
        top: dict[str, Any] = {}
        if self.image is not None and not self.image.is_empty():
            top["image"] = self.image.to_wire()
        top |= {
            "metadata": metadata,
            "ops": [[d, self.op_bytes(d)] for d in self.ops],
            "output": {"digest": self.output.digest, "index": self.output.index},
            "version": VERSION,
        }
        return codec.pack(top)

    @classmethod
    def from_bytes(cls, data: bytes) -> Definition:
        """Parse and fully validate definition bytes; DefinitionError says why they are bad."""
        paused = gc.isenabled()
        if paused:  # decoding makes many small acyclic objects: the cyclic GC only slows it
            gc.disable()
        try:
            return _from_bytes(data)
        except DefinitionError:
            raise
        except RecursionError:
            raise DefinitionError("definition is nested too deeply") from None
        except MemoryError:
            raise DefinitionError("definition is too large to load") from None
        finally:
            if paused:
                gc.enable()


# ---------------------------------------------------------------------------------- parsing


def _unpack(data: bytes, what: str) -> Any:
    try:
        return msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=True,
                               timestamp=0)
    except msgpack.ExtraData:
        raise DefinitionError(f"{what}: trailing bytes after the msgpack value") from None
    except Exception as e:  # msgpack reports malformed input with many exception types
        reason = str(e).split("\n")[0] or type(e).__name__
        raise DefinitionError(f"{what} is not valid msgpack ({reason})") from None


def _checked_op(digest: str, op: Any) -> None:
    try:
        codec.check_types(op, Op)
    except FieldError as e:
        raise DefinitionError(f"op {digest}: {e}", vertex=digest) from None
    try:
        validate.check_op(op)
    except DefinitionError as e:
        raise DefinitionError(f"op {digest}: {e}", vertex=digest) from None


def _from_bytes(data: Any) -> Definition:
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    if not isinstance(data, bytes):
        raise DefinitionError(f"definition must be bytes, not {type(data).__name__}")
    if not data:
        raise DefinitionError("definition is empty")
    if len(data) > MAX_DEFINITION_BYTES:
        raise DefinitionError(f"definition is {len(data)} bytes (limit {MAX_DEFINITION_BYTES})")
    top = _unpack(data, "definition")
    if type(top) is not dict:
        raise DefinitionError(f"definition must be a map, got {codec.typename(top)}")
    keys = list(top)
    if keys != _TOP_KEYS and keys != _TOP_KEYS_IMAGE:
        raise DefinitionError(codec.fields_problem(
            "definition", _TOP_KEYS_IMAGE if "image" in top else _TOP_KEYS, top))
    version = top["version"]
    if type(version) is not int:
        raise DefinitionError(f"definition version must be the integer {VERSION}, got a "
                              f"{codec.typename(version)} ({repr(version)[:20]})")
    if version != VERSION:
        raise DefinitionError(f"unsupported definition version {version} (want {VERSION})")
    raw_ops = top["ops"]
    if type(raw_ops) is not list:
        raise DefinitionError("definition ops must be an array")
    if not raw_ops:
        raise DefinitionError("definition has no ops")
    if len(raw_ops) > MAX_OPS:
        raise DefinitionError(f"definition has {len(raw_ops)} ops (limit {MAX_OPS})")

    ops: dict[str, Op] = {}
    op_bytes: dict[str, bytes] = {}
    order: list[str] = []
    decode_op = codec.decoder_for(Op)  # generated on first use (a cached solve of a build
    # file decodes nothing)
    pack = codec.pack
    for i, item in enumerate(raw_ops):
        if type(item) is not list or len(item) != 2 or type(item[0]) is not str \
                or type(item[1]) is not bytes:
            raise DefinitionError(f"op {i}: must be a [digest, bytes] pair")
        digest, blob = item
        validate.check_digest(digest, f"op {i} digest")
        if digest in ops:
            raise DefinitionError(f"op {digest} is listed twice", vertex=digest)
        raw = _unpack(blob, f"op {digest}")
        try:
            op = decode_op(raw)
        except FieldError as e:
            raise DefinitionError(f"op {digest}: {e}", vertex=digest) from None
        if pack(raw) != blob:
            raise DefinitionError(f"op {digest} is not canonically encoded", vertex=digest)
        try:
            validate.check_op(op)
        except DefinitionError as e:
            raise DefinitionError(f"op {digest}: {e}", vertex=digest) from None
        ops[digest] = op
        op_bytes[digest] = blob
        order.append(digest)

    try:
        output = codec.decoder_for(Input)(top["output"])
    except FieldError as e:
        raise DefinitionError(f"definition output: {e}") from None
    validate.check_input(output, "definition output")

    raw_meta = top["metadata"]
    if type(raw_meta) is not dict:
        raise DefinitionError("definition metadata must be a map")
    metadata: dict[str, OpMetadata] = {}
    decode_meta = codec.decoder_for(OpMetadata)
    for digest, value in raw_meta.items():
        if digest not in ops:
            raise DefinitionError(f"metadata for unknown op {digest[:80]!r}")
        try:
            meta = decode_meta(value)
        except FieldError as e:
            raise DefinitionError(f"metadata for {digest}: {e}",
                                  vertex=digest) from None
        if meta == _DEFAULT_META:
            raise DefinitionError(f"metadata for {digest} is empty (omit it)", vertex=digest)
        validate.check_metadata(meta)
        metadata[digest] = meta

    image = ImageMeta.from_wire(top["image"]) if "image" in top else None

    _check_graph(order, ops, metadata, output)
    for digest in order:
        if digest_of(op_bytes[digest]) != digest:
            raise DefinitionError(f"op {digest} does not match its bytes' digest", vertex=digest)
    if pack(top) != data:
        raise DefinitionError("definition is not canonically encoded")
    return Definition(ops, metadata, output, image=image, _op_bytes=op_bytes, _checked=True)


def _check_graph(order: list[str], ops: Mapping[str, Op], metadata: Mapping[str, OpMetadata],
                 output: Input) -> None:
    """Inputs exist, come first (no cycles), name real outputs; every op feeds the output."""
    position = {d: i for i, d in enumerate(order)}
    outputs: dict[str, int] = {}
    for i, digest in enumerate(order):
        for inp in ops[digest].inputs:
            j = position.get(inp.digest)
            if j is None:
                validate.check_digest(inp.digest, f"op {digest} input")
                raise DefinitionError(f"op {digest} refers to missing input {inp.digest}",
                                      vertex=digest)
            if j >= i:
                cycle = _find_cycle(ops)
                if cycle:
                    raise DefinitionError("cycle: " + " -> ".join(cycle), vertex=cycle[0])
                raise DefinitionError(f"op {digest} is listed before its input {inp.digest}",
                                      vertex=digest)
            n = outputs.get(inp.digest)
            if n is None:
                n = outputs[inp.digest] = validate.outputs_of(ops[inp.digest])
            if not 0 <= inp.index < n:
                raise DefinitionError(f"op {digest} uses output {inp.index} of {inp.digest},"
                                          f" which has {n}", vertex=digest)
    if output.digest not in ops:
        raise DefinitionError(f"definition output {output.digest} is not one of its ops")
    n = validate.outputs_of(ops[output.digest])
    if not 0 <= output.index < n:
        raise DefinitionError(f"definition output index {output.index} out of range "
                              f"({output.digest} has {n})")
    for digest in metadata:
        if digest not in ops:
            raise DefinitionError(f"metadata for unknown op {digest}")
    reachable = {output.digest}
    stack = [output.digest]
    while stack:
        for inp in ops[stack.pop()].inputs:
            if inp.digest not in reachable:
                reachable.add(inp.digest)
                stack.append(inp.digest)
    if len(reachable) != len(order):
        stray = next(d for d in order if d not in reachable)
        raise DefinitionError(f"op {stray} does not lead to the output", vertex=stray)


def _find_cycle(ops: Mapping[str, Op]) -> list[str] | None:
    import networkx as nx

    g: nx.DiGraph[str] = nx.DiGraph()
    for digest, op in ops.items():
        for inp in op.inputs:
            if inp.digest in ops:
                g.add_edge(inp.digest, digest)
    try:
        edges = nx.find_cycle(g)
    except nx.NetworkXNoCycle:
        return None
    return [u for u, _ in edges] + [edges[0][0]]
