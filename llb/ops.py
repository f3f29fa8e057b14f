"""The op dataclasses: what a Definition holds and what the solver runs.

Every op is a frozen dataclass whose fields are plain values (str, int, bool, bytes, tuples
of those, or nested frozen dataclasses). Inputs are referenced by `Input(digest, index)`, never
by object, so an op's canonical msgpack encoding (see `llb.definition`) is its identity.
Field order and names here are the wire contract: change them only with a version bump.
"""

from __future__ import annotations

from llb.values import Value, field, value_class

# ---------------------------------------------------------------------------------- inputs


@value_class(frozen=True, eq=False, repr=False)  # eq, repr, __init__ from Value
class Input(Value):
    """A reference to output `index` of the op with digest `digest` ("sha256:<hex>")."""

    digest: str
    index: int = 0


# ---------------------------------------------------------------------------------- sources


@value_class(frozen=True, eq=False, repr=False)  # eq, repr, __init__ from Value
class SourceOp(Value):
    """A leaf: where content comes from.

    identifier is BuildKit-style: "scratch", "docker-image://<normalised ref>",
    "oci-layout://<abs path>@<digest>" or "oci-layout://<abs path>:<tag>", "local://<name>".
    include/exclude are gitignore-style patterns (only for local sources).
    attrs holds further source options as sorted (key, value) string pairs.
    """

    identifier: str
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    attrs: tuple[tuple[str, str], ...] = ()
    kind: str = field(default="source", init=False)

    @property
    def inputs(self) -> tuple[Input, ...]:
        return ()

    @property
    def scheme(self) -> str:
        """The identifier's scheme ("local", "docker-image", ...); "scratch" for scratch."""
        return split_identifier(self.identifier)[0]

    @property
    def locator(self) -> str:
        """What follows "<scheme>://" (a local name, an image reference, a layout path)."""
        return split_identifier(self.identifier)[1]


SCRATCH = "scratch"
# source identifier schemes: "<scheme>://<locator>" (scratch has none)
SCHEME_LOCAL = "local"
SCHEME_IMAGE = "docker-image"
SCHEME_OCI_LAYOUT = "oci-layout"


def source_identifier(scheme: str, locator: str) -> str:
    """"<scheme>://<locator>", a SourceOp identifier."""
    return f"{scheme}://{locator}"


def split_identifier(identifier: str) -> tuple[str, str]:
    """(scheme, locator) of a source identifier; ("scratch", "") for scratch and ("", "")
    for one without a scheme."""
    if identifier == SCRATCH:
        return SCRATCH, ""
    scheme, sep, locator = identifier.partition("://")
    return (scheme, locator) if sep else ("", "")

# ---------------------------------------------------------------------------------- exec

MOUNT_BIND = "bind"
MOUNT_CACHE = "cache"
MOUNT_TMPFS = "tmpfs"

SHARING_SHARED = "shared"
SHARING_PRIVATE = "private"
SHARING_LOCKED = "locked"


@value_class(frozen=True, eq=False, repr=False)  # eq, repr, __init__ from Value
class Mount(Value):
    """One mount of an ExecOp. mounts[0] of every ExecOp is the rootfs at "/".

    input: index into ExecOp.inputs, or -1 for none (cache and tmpfs mounts). A scratch
           state is an ordinary input: the SourceOp "scratch".
    output: the output index this mount's result is exposed as, or -1 when it has none
            (read-only, cache and tmpfs mounts have none).
    selector: a sub-path of the input to mount ("" = the whole input).
    """

    dest: str
    input: int = -1
    output: int = -1
    selector: str = ""
    readonly: bool = False
    type: str = MOUNT_BIND
    cache_id: str = ""
    sharing: str = SHARING_SHARED
    tmpfs_size: int = 0


NETWORK_NONE = "none"
NETWORK_HOST = "host"

# the PATH an exec gets when its env sets none (BuildKit adds the same, client and executor side)
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@value_class(frozen=True, eq=False, repr=False)  # eq, repr, __init__ from Value
class ExecOp(Value):
    """Run a process (through runc) on the rootfs mount and mounts; outputs are the rootfs
    (output 0 unless read-only) and every writable bind mount."""

    inputs: tuple[Input, ...]
    args: tuple[str, ...]
    env: tuple[str, ...] = ()  # "KEY=value", in order
    cwd: str = "/"
    user: str = ""  # "" = root; "uid[:gid]" or "name[:group]"
    network: str = NETWORK_NONE
    hostname: str = ""
    mounts: tuple[Mount, ...] = ()
    kind: str = field(default="exec", init=False)


# ---------------------------------------------------------------------------------- file


@value_class(frozen=True, eq=False, repr=False)  # eq, repr, __init__ from Value
class Mkdir(Value):
    """Create a directory; with parents, missing parents get the same mode as the leaf."""

    path: str
    mode: int = 0o755
    parents: bool = False
    owner: str = ""  # "" = root (0:0); "uid:gid" numbers or "user:group" names
    created: int = -1  # mtime/atime in nanoseconds since the epoch; -1 = now
    action: str = field(default="mkdir", init=False)


@value_class(frozen=True, eq=False, repr=False)  # eq, repr, __init__ from Value
class Mkfile(Value):
    """Create or replace a regular file (an existing file keeps its mode)."""

    path: str
    data: bytes = b""
    mode: int = 0o644
    owner: str = ""
    created: int = -1
    action: str = field(default="mkfile", init=False)


@value_class(frozen=True, eq=False, repr=False)  # eq, repr, __init__ from Value
class Rm(Value):
    """Remove a path (recursively); a missing path is fine, an unmatched wildcard is not
    unless allow_not_found."""

    path: str
    allow_not_found: bool = False
    allow_wildcard: bool = False
    action: str = field(default="rm", init=False)


@value_class(frozen=True, eq=False, repr=False)  # eq, repr, __init__ from Value
class Copy(Value):
    """Copy src from FileOp.inputs[source] to dest in the state being built."""

    source: int  # index into FileOp.inputs
    src: str
    dest: str
    owner: str = ""
    mode: int = -1  # -1 = keep the source's mode
    follow_symlinks: bool = False
    copy_dir_contents_only: bool = False
    create_dest_path: bool = False
    allow_wildcard: bool = False
    allow_empty_wildcard: bool = False
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    created: int = -1
    always_replace_existing: bool = False
    action: str = field(default="copy", init=False)


FileAction = Mkdir | Mkfile | Rm | Copy


@value_class(frozen=True, eq=False, repr=False)  # eq, repr, __init__ from Value
class FileOp(Value):
    """Apply actions, in order, to inputs[0] (the base state); copies read other inputs.
    One output: the resulting tree."""

    inputs: tuple[Input, ...]
    actions: tuple[FileAction, ...]
    kind: str = field(default="file", init=False)


# ---------------------------------------------------------------------------------- merge/diff


@value_class(frozen=True, eq=False, repr=False)  # eq, repr, __init__ from Value
class MergeOp(Value):
    """Apply every input's layer chain in order onto an empty tree (later inputs win)."""

    inputs: tuple[Input, ...]
    kind: str = field(default="merge", init=False)


@value_class(frozen=True, eq=False, repr=False)  # eq, repr, __init__ from Value
class DiffOp(Value):
    """What inputs[1] (upper) changed relative to inputs[0] (lower), deletions included."""

    inputs: tuple[Input, Input]
    kind: str = field(default="diff", init=False)


Op = SourceOp | ExecOp | FileOp | MergeOp | DiffOp


@value_class(frozen=True, eq=False, repr=False)  # eq, repr, __init__ from Value
class OpMetadata(Value):
    """What lives beside an op and does not change its result."""

    description: str = ""
    progress_name: str = ""
    ignore_cache: bool = False
