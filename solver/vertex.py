"""Vertices: one per op digest of the solved graph, with the edges and the per-solve state
the scheduler keeps (cache key, outputs, what is still awaited)."""

from __future__ import annotations


from llb.definition import Definition
from llb.errors import DefinitionError
from llb.ops import Copy, Op, OpMetadata
from llb.solver.cachekey import partial_inputs
from llb.solver.names import vertex_name

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from typing import Any
    from llb.snapshot import Ref

_NONE: dict[int, list[Copy]] = {}


class Vertex:
    """One op of the solve. `inputs` are (vertex, output index) pairs in op order; `edges_out`
    lists (consumer, input position, read only in part)."""

    # per-solve state; class-level defaults keep creating 10,000 vertices cheap
    _name: str | None = None
    key = ""  # the cache key, once computed
    ingredients: dict[str, Any] = {}  # what the key is made of (a fresh dict once computed)
    outputs: tuple[str | None, ...] | None = None  # snapshot ids by output index
    refs: list[Ref | None] | None = None
    hit = False
    missed = False
    want_ref = False
    key_deps = 0
    run_deps = 0
    submitted = False
    provisional = False  # its key may change once it ran (a local source): see Scheduler
    terminal: str | None = None
    explain: str | None = None

    def __init__(self, digest: str, op: Op, index: int, meta: OpMetadata | None):
        self.digest = digest
        self.op = op
        self.index = index
        self.meta = meta
        self.inputs: list[tuple[Vertex, int]] = []
        self.edges_out: list[tuple[Vertex, int, bool]] = []
        self.partial: dict[int, list[Copy]] = partial_inputs(op) if op.kind == "file" else _NONE

    @property
    def name(self) -> str:
        if self._name is None:
            meta = self.meta
            if meta is not None and meta.progress_name:
                self._name = meta.progress_name
            else:
                self._name = vertex_name(self.op)
        return self._name

    @property
    def ignore_cache(self) -> bool:
        return self.meta is not None and self.meta.ignore_cache

    @property
    def description(self) -> str:
        meta = self.meta
        return (meta.description if meta is not None else "") or self.name

    def __repr__(self) -> str:
        return f"Vertex({self.index}, {self.digest[:19]}, {self.op.kind})"


def build_graph(definition: Definition) -> tuple[list[Vertex], Vertex, int]:
    """The vertices reachable from the definition's output, inputs first, numbered from 1,
    and the output (vertex, output index)."""
    ops = definition.ops
    metadata = definition.metadata
    out = definition.output
    if out is None or out.digest not in ops:
        raise DefinitionError("definition has no output op")
    reach = {out.digest}
    order = list(ops)
    for d in reversed(order):
        if d in reach:
            for inp in ops[d].inputs:
                if inp.digest not in ops:
                    raise DefinitionError(f"op {d} refers to missing input {inp.digest}", vertex=d)
                reach.add(inp.digest)
    vertices: dict[str, Vertex] = {}
    seq: list[Vertex] = []
    for d in order:
        if d not in reach:
            continue
        op = ops[d]
        v = Vertex(d, op, len(seq) + 1, metadata.get(d))
        for pos, inp in enumerate(op.inputs):
            u = vertices.get(inp.digest)
            if u is None:
                raise DefinitionError(f"op {d} comes before its input {inp.digest}", vertex=d)
            v.inputs.append((u, inp.index))
            u.edges_out.append((v, pos, pos in v.partial))
        vertices[d] = v
        seq.append(v)
    return seq, vertices[out.digest], out.index
