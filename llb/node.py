"""The DSL's graph: a Node is one validated op with its digest, canonical bytes, input nodes
and metadata; an Output is one output of a node plus the settings later runs inherit
(BuildKit's llb.Output under llb.State). Every DSL module builds on these two."""

from __future__ import annotations


from llb import codec, validate
from llb import ops as _ops
from llb.codec import FieldError
from llb.errors import DefinitionError
from llb.values import Value, value_class

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from typing import Any

NO_META = _ops.OpMetadata()
_new = object.__new__


class Node:
    """One op with its digest, its canonical bytes, the nodes its inputs name, and metadata."""

    __slots__ = ("op", "digest", "data", "inputs", "meta")

    def __init__(self, op: _ops.Op, inputs: tuple[Node, ...], meta: _ops.OpMetadata = NO_META,
                 *, typed: bool = False):
        """`typed`: the caller built `op` from values of exactly its field types (DSL code
        that checked them), so only the values are validated; otherwise the types are too."""
        if typed:
            wire = codec.to_wire(op)
        else:
            try:
                wire = codec.check_types(op, _ops.Op)
            except FieldError as e:
                raise DefinitionError(f"{op.kind}: {e}") from None
        validate.check_op(op)
        validate.check_metadata(meta)
        self.op = op
        self.data = codec.pack(wire)
        self.digest = codec.digest_of(self.data)
        self.inputs = inputs
        self.meta = meta

    @classmethod
    def checked(cls, op: _ops.Op, wire: dict[str, Any], inputs: tuple[Node, ...],
                meta: _ops.OpMetadata = NO_META) -> Node:
        """A node for an op that is valid by construction, `wire` being exactly its wire form
        (what codec.to_wire gives): the DSL's fast path, which skips the type and value
        checks of Node() because what it was built from was checked already."""
        if meta is not NO_META:
            validate.check_metadata(meta)
        node = object.__new__(cls)
        node.op, node.inputs, node.meta = op, inputs, meta
        node.data = codec.pack(wire)
        node.digest = codec.digest_of(node.data)
        return node

    def with_meta(self, meta: _ops.OpMetadata) -> Node:
        """The same op (digest unchanged) with other metadata."""
        node = object.__new__(Node)
        node.op, node.data, node.digest, node.inputs = self.op, self.data, self.digest, self.inputs
        node.meta = meta
        return node


def new_node(op: _ops.Op, inputs: tuple[Node, ...], *, name: str = "", description: str = "",
             ignore_cache: bool = False, typed: bool = False) -> Node:
    """A graph node for `op` (validated; `typed` as for Node), with its progress
    name/description metadata."""
    return Node(op, inputs, node_meta(name, description, ignore_cache), typed=typed)


def node_meta(name: str = "", description: str = "", ignore_cache: bool = False) -> _ops.OpMetadata:
    """The metadata of a node named `name` (progress) with `description` (both strings)."""
    if not isinstance(name, str) or not isinstance(description, str):
        raise DefinitionError("name and description must be strings")
    if not name and not description and not ignore_cache:
        return NO_META
    return _ops.OpMetadata(description=description, progress_name=name,
                           ignore_cache=bool(ignore_cache))


@value_class(frozen=True, eq=False, repr=False)  # eq, hash, repr: Value's
class Settings(Value):
    """What a State carries into later runs (BuildKit keeps these as state values)."""

    env: tuple[tuple[str, str], ...] = ()
    cwd: str = "/"
    user: str = ""
    hostname: str = ""
    network: str = _ops.NETWORK_NONE
    # image config only (llb.imagemeta): what an exported image runs and says about itself
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    labels: tuple[tuple[str, str], ...] = ()  # sorted by key
    expose: tuple[str, ...] = ()  # sorted "PORT/PROTO"


DEFAULT_SETTINGS = Settings()


class Output:
    """Output `index` of `node` with the settings later runs inherit; `index` None is an exec
    whose rootfs is read-only (it has no root output). llb.State builds on it."""

    __slots__ = ("_node", "_index", "_settings")

    def __init__(self, node: Node, index: int | None = 0, settings: Settings = DEFAULT_SETTINGS):
        self._node = node
        self._index = index
        self._settings = settings

    @property
    def node(self) -> Node:
        """The graph node this is an output of."""
        return self._node

    @property
    def settings(self) -> Settings:
        """env, cwd, user, hostname and network for later runs."""
        return self._settings

    def output_index(self) -> int:
        """The output index; DefinitionError for an exec's missing (read-only) root."""
        if self._index is None:
            raise DefinitionError("this exec has a read-only rootfs and so no root output; "
                                  "use get_mount(dest) for its results", vertex=self._node.digest)
        return self._index

    @property
    def output(self) -> _ops.Input:
        """The op output this stands for (digest and index)."""
        inp = _new(_ops.Input)  # (its fields known to be of their types: no __init__)
        inp.__dict__.update({"digest": self._node.digest, "index": self.output_index()})
        return inp

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Output):
            return NotImplemented
        return (self._node.digest, self._index, self._settings) == \
            (other._node.digest, other._index, other._settings)

    def __hash__(self) -> int:
        return hash((self._node.digest, self._index, self._settings))
