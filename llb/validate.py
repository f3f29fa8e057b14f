"""Value rules for ops, shared by the DSL (at construction) and `Definition.from_bytes`.

Types are checked by `llb.codec`; this module checks what the values mean: absolute clean
paths, mode ranges, mount kinds, sharing modes, source identifiers and the like.
"""

from __future__ import annotations

from collections.abc import Callable

from llb import ops as _ops
from llb.errors import DefinitionError
from llb.paths import is_clean_abs

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from typing import Any

# Patterns as strings, compiled by `re` on first use (and cached there): most definitions
# never need most of them, and compiling all at import cost every command ~1 ms.
LOCAL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
_OWNER_PATTERN = r"^[^:\s\x00]{1,256}(?::[^:\s\x00]{1,256})?$"
_HOSTNAME_PATTERN = r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,62})$"
_ENV_KEY_PATTERN = r"^[^=\x00]{1,4096}$"
_ATTR_KEY_PATTERN = r"^[a-z][a-z0-9._-]{0,127}$"
_HEX = frozenset("0123456789abcdef")


def matches(pattern: str, text: str) -> bool:
    """Whether `pattern` matches at the start of `text`: `re` (which loads enum) only once
    a definition has a string to check, never for a cached solve of file ops."""
    import re

    return re.match(pattern, text) is not None


MAX_INPUTS = 1 << 16
MAX_OUTPUTS = 1 << 16
MAX_ITEMS = 1 << 16  # args, env entries, mounts, actions, patterns
MAX_STRING = 1 << 16  # any single string (paths, args, patterns)
MAX_INT64 = (1 << 63) - 1
MAX_ID = (1 << 32) - 2  # uids and gids: 32 bits, and (uid_t)-1 means "unchanged" to Linux
NAME_MAX = 255  # bytes of one path component (Linux)
PATH_MAX = 4095  # bytes of a path a process may be given (Linux's 4096, NUL included)
SHARING = (_ops.SHARING_SHARED, _ops.SHARING_PRIVATE, _ops.SHARING_LOCKED)
NETWORKS = (_ops.NETWORK_NONE, _ops.NETWORK_HOST)
MOUNT_TYPES = (_ops.MOUNT_BIND, _ops.MOUNT_CACHE, _ops.MOUNT_TMPFS)


def _fail(message: str) -> None:
    raise DefinitionError(message)


def check_digest(digest: str, what: str = "digest") -> None:
    # "sha256:" and 64 lowercase hex digits (checked for every input of every op: no regex)
    if not (len(digest) == 71 and digest.startswith("sha256:") and _HEX.issuperset(digest[7:])):
        _fail(f"{what} {digest[:80]!r} is not sha256:<64 hex digits>")


def check_input(inp: _ops.Input, what: str = "input") -> None:
    check_digest(inp.digest, what)
    if not 0 <= inp.index < MAX_OUTPUTS:
        label = what if what.endswith("output") else f"{what} output"
        _fail(f"{label} index {inp.index} out of range")


def _check_inputs(inputs: tuple[_ops.Input, ...], kind: str) -> None:
    """Only the count: whether each input names an existing op, and one of its outputs, is
    checked over the whole graph (Definition), which also rejects malformed digests."""
    if len(inputs) > MAX_INPUTS:
        _fail(f"{kind} op has {len(inputs)} inputs (limit {MAX_INPUTS})")


def _check_str(value: str, what: str) -> None:
    if len(value) > MAX_STRING:
        _fail(f"{what} is {len(value)} characters long (limit {MAX_STRING})")
    if "\x00" in value:
        _fail(f"{what} contains a NUL byte")


def _check_items(items: tuple, what: str) -> None:
    if len(items) > MAX_ITEMS:
        _fail(f"{what} has {len(items)} items (limit {MAX_ITEMS})")


def check_path(path: str, what: str, *, allow_slash: bool = False) -> None:
    _check_str(path, what)
    if not is_clean_abs(path, allow_slash=allow_slash):
        _fail(f"{what} {path[:200]!r} must be an absolute, clean path")


def check_mode(mode: int, what: str, *, allow_unset: bool = False) -> None:
    if allow_unset and mode == -1:
        return
    if not 0 <= mode <= 0o7777:
        _fail(f"{what} {mode} out of range (0..0o7777)")


def check_owner(owner: str, what: str) -> None:
    if owner and not matches(_OWNER_PATTERN, owner):
        _fail(f"{what} {owner[:80]!r} must be 'user[:group]' (names or numbers)")
    for part in owner.split(":"):
        if part.isascii() and part.isdigit() and int(part) > MAX_ID:
            _fail(f"{what} {owner[:80]!r}: id {part[:40]} out of range (0 to {MAX_ID})")


def check_process_path(path: str, what: str) -> None:
    """A path a container process is given (its cwd, a mount point) must fit Linux's
    limits, or runc fails with its own error."""
    data = path.encode("utf-8", "surrogateescape")
    if len(data) > PATH_MAX:
        _fail(f"{what} is {len(data)} bytes long (Linux takes at most {PATH_MAX})")
    for part in data.split(b"/"):
        if len(part) > NAME_MAX:
            _fail(f"{what} has a component of {len(part)} bytes (Linux takes at most "
                  f"{NAME_MAX}): {part[:40].decode('utf-8', 'replace')}...")


def check_created(created: int, what: str) -> None:
    if not -1 <= created <= MAX_INT64:
        _fail(f"{what} {created} out of range (-1 or nanoseconds since the epoch)")


def check_patterns(patterns: tuple[str, ...], what: str) -> None:
    _check_items(patterns, what)
    for p in patterns:
        _check_str(p, what)
        if not p:
            _fail(f"{what} contains an empty pattern")


# ---------------------------------------------------------------------------------- per op


def check_source(op: _ops.SourceOp) -> None:
    ident = op.identifier
    _check_str(ident, "source identifier")
    scheme, rest = op.scheme, op.locator
    is_local = scheme == _ops.SCHEME_LOCAL
    if scheme == _ops.SCRATCH:
        pass
    elif scheme == _ops.SCHEME_IMAGE:
        from llb.refs import normalize_image_ref  # image sources only: its patterns cost start-up

        if normalize_image_ref(rest) != rest:
            _fail(f"image reference {rest!r} is not normalised")
    elif scheme == _ops.SCHEME_OCI_LAYOUT:
        if "@" in rest:
            path, _, digest = rest.rpartition("@")
            check_digest(digest, "oci-layout digest")
        else:
            path, sep, tag = rest.rpartition(":")
            if not sep or not matches(r"^[\w][\w.-]{0,127}$", tag):
                _fail(f"oci-layout source {rest[:200]!r} needs ':<tag>' or '@<digest>'")
        if not matches(LOCAL_NAME_PATTERN, path):  # else a name: --oci-layout NAME=PATH
            check_path(path, "oci-layout path")
    elif is_local:
        if not matches(LOCAL_NAME_PATTERN, rest):
            _fail(f"local name {rest[:80]!r} must match {LOCAL_NAME_PATTERN}")
    else:
        _fail(f"unknown source identifier {ident[:80]!r}")
    if not is_local and (op.include or op.exclude):
        _fail(f"include/exclude patterns only apply to local sources, not {ident[:80]!r}")
    check_patterns(op.include, "include")
    check_patterns(op.exclude, "exclude")
    _check_items(op.attrs, "source attrs")
    keys = [k for k, _ in op.attrs]
    if keys != sorted(set(keys)):
        _fail("source attrs must be sorted by key, each key once")
    for k, v in op.attrs:
        if not matches(_ATTR_KEY_PATTERN, k):
            _fail(f"source attr key {k[:80]!r} is invalid")
        _check_str(v, f"source attr {k}")


def check_exec(op: _ops.ExecOp) -> None:
    _check_inputs(op.inputs, "exec")
    if not op.args:
        _fail("exec has no arguments")
    _check_items(op.args, "exec args")
    for a in op.args:
        _check_str(a, "exec argument")
    _check_items(op.env, "exec env")
    for e in op.env:
        _check_str(e, "exec env entry")
        key, sep, _ = e.partition("=")
        if not sep or not matches(_ENV_KEY_PATTERN, key):
            _fail(f"exec env entry {e[:80]!r} must be KEY=value")
    check_path(op.cwd, "exec cwd")
    check_process_path(op.cwd, "exec cwd")
    check_owner(op.user, "exec user")
    if op.network not in NETWORKS:
        _fail(f"exec network {op.network[:40]!r} must be one of {', '.join(NETWORKS)}")
    if op.hostname and not matches(_HOSTNAME_PATTERN, op.hostname):
        _fail(f"exec hostname {op.hostname[:80]!r} is invalid")
    if not op.mounts:
        _fail("exec has no mounts (mounts[0] must be the rootfs at /)")
    _check_items(op.mounts, "exec mounts")
    root = op.mounts[0]
    if root.dest != "/" or root.type != _ops.MOUNT_BIND:
        _fail("exec mounts[0] must be the rootfs: a bind mount at /")
    seen: set[str] = set()
    used: set[int] = set()
    next_output = 0
    for i, m in enumerate(op.mounts):
        where = f"mount {m.dest[:200]!r}"
        check_path(m.dest, f"mount {i} dest")
        check_process_path(m.dest, f"mount {i} dest")
        if i and m.dest == "/":
            _fail("only mounts[0] may be mounted at /")
        if m.dest in seen:
            _fail(f"{where} appears twice")
        seen.add(m.dest)
        if m.type not in MOUNT_TYPES:
            _fail(f"{where}: unknown mount type {m.type[:40]!r}")
        if m.sharing not in SHARING:
            _fail(f"{where}: sharing {m.sharing[:40]!r} must be one of {', '.join(SHARING)}")
        if m.selector:
            check_path(m.selector, f"{where} selector")
        if m.type == _ops.MOUNT_BIND:
            if not 0 <= m.input < len(op.inputs):
                _fail(f"{where}: input {m.input} out of range (exec has {len(op.inputs)})")
            used.add(m.input)
            if m.cache_id or m.tmpfs_size or m.sharing != _ops.SHARING_SHARED:
                _fail(f"{where}: cache id, sharing and size only apply to cache/tmpfs mounts")
        else:
            if m.input != -1 or m.output != -1 or m.selector:
                _fail(f"{where}: {m.type} mounts take no input, output or selector")
            if m.type == _ops.MOUNT_CACHE:
                if not m.cache_id:
                    _fail(f"{where}: cache mount needs an id")
                _check_str(m.cache_id, f"{where} cache id")
                if m.tmpfs_size:
                    _fail(f"{where}: size only applies to tmpfs mounts")
            else:
                if m.cache_id or m.sharing != _ops.SHARING_SHARED:
                    _fail(f"{where}: tmpfs mounts take no cache id or sharing")
                if not 0 <= m.tmpfs_size <= MAX_INT64:
                    _fail(f"{where}: tmpfs size {m.tmpfs_size} out of range")
        writable = m.type == _ops.MOUNT_BIND and not m.readonly
        expected = next_output if writable else -1
        if m.output != expected:
            _fail(f"{where}: output must be {expected}, not {m.output}")
        if writable:
            next_output += 1
    unused = set(range(len(op.inputs))) - used
    if unused:
        _fail(f"exec input {min(unused)} is not mounted")


def check_file(op: _ops.FileOp) -> None:
    _check_inputs(op.inputs, "file")
    if not op.inputs:
        _fail("file op needs a base input (inputs[0])")
    if not op.actions:
        _fail("file op has no actions")
    _check_items(op.actions, "file actions")
    used = {0}
    for a in op.actions:
        try:
            _check_action(a, len(op.inputs))
        except DefinitionError as e:
            target = f"{a.src} {a.dest}" if isinstance(a, _ops.Copy) else a.path
            raise DefinitionError(f"{a.action} {repr(target[:200])[1:-1]}: {e}") from None
        if isinstance(a, _ops.Copy):
            used.add(a.source)
    unused = set(range(len(op.inputs))) - used
    if unused:
        _fail(f"file input {min(unused)} is not read by any copy")


def _check_action(a: _ops.FileAction, n_inputs: int) -> None:
    if isinstance(a, _ops.Copy):
        if not 0 <= a.source < n_inputs:
            _fail(f"source input {a.source} out of range")
        check_path(a.src, "src")
        check_path(a.dest, "dest", allow_slash=True)
        check_mode(a.mode, "mode", allow_unset=True)
        check_patterns(a.include, "include")
        check_patterns(a.exclude, "exclude")
    else:
        check_path(a.path, "path")
        if isinstance(a, _ops.Rm):
            return
        if isinstance(a, _ops.Mkfile) and a.path == "/":
            _fail("cannot create a file at /")
        if not 0 <= a.mode <= 0o7777:
            check_mode(a.mode, "mode")
    if a.owner:
        check_owner(a.owner, "owner")
    if not -1 <= a.created <= MAX_INT64:
        check_created(a.created, "created")


def check_merge(op: _ops.MergeOp) -> None:
    if not op.inputs:
        _fail("merge has no inputs")
    _check_inputs(op.inputs, "merge")


def check_diff(op: _ops.DiffOp) -> None:
    if len(op.inputs) != 2:
        _fail("diff needs exactly two inputs (lower, upper)")
    _check_inputs(op.inputs, "diff")


_CHECKS: dict[str, Callable[[Any], None]] = {
    "source": check_source, "exec": check_exec, "file": check_file, "merge": check_merge,
    "diff": check_diff}


def check_op(op: _ops.Op) -> None:
    """Raise DefinitionError unless every value of `op` is meaningful."""
    _CHECKS[op.kind](op)


def check_metadata(meta: _ops.OpMetadata) -> None:
    _check_str(meta.description, "description")
    _check_str(meta.progress_name, "progress name")


def outputs_of(op: _ops.Op) -> int:
    """How many outputs `op` has (exec: one per writable mount; every other op: one)."""
    if isinstance(op, _ops.ExecOp):
        return sum(1 for m in op.mounts if m.output >= 0)
    return 1
