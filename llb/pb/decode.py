"""BuildKit Definition bytes (from any client: buildctl, Dockerfile frontends dumped with
`buildctl debug dump-llb`, the Go client, llb itself) -> llb.Definition.

Only what the result is built from is read: the ops reachable from the terminal op (the
last one). Metadata keeps progress names, descriptions and ignore_cache. Anything llb cannot
run the way buildkitd would (secrets, SSH, proxies, nested builds, git/http sources, another
platform, a field this version of the format does not know) is an UnsupportedError naming
it, never silently dropped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from google.protobuf.message import DecodeError, Message
from google.protobuf.unknown_fields import UnknownFieldSet

from llb import codec, validate
from llb import ops as _ops
from llb.codec import FieldError, digest_of
from llb.definition import Definition
from llb.errors import DefinitionError
from llb.paths import clean
from llb.pb import ops_pb2 as pb
from llb.pb.encode import CUSTOM_NAME, DESCRIPTION, host_platform
from llb.pb.errors import UnsupportedError

__all__ = ["Decoded", "decode", "from_buildkit"]

_IGNORED_LOCAL_ATTRS = frozenset({"local.unique", "local.sharedkeyhint", "local.session"})
_NETWORK = {pb.UNSET: _ops.NETWORK_NONE, pb.NONE: _ops.NETWORK_NONE, pb.HOST: _ops.NETWORK_HOST}
_SHARING = {pb.SHARED: _ops.SHARING_SHARED, pb.PRIVATE: _ops.SHARING_PRIVATE,
            pb.LOCKED: _ops.SHARING_LOCKED}
_SCRATCH = _ops.SourceOp(_ops.SCRATCH)


@dataclass
class Decoded:
    """The llb.Definition of a BuildKit definition, and `vertex`: BuildKit op digest -> the
    llb op digest it became."""

    definition: Definition
    vertex: dict[str, str]


def from_buildkit(data: bytes) -> Definition:
    """The llb.Definition of BuildKit Definition bytes (DefinitionError says why not)."""
    return decode(data).definition


def decode(data: bytes) -> Decoded:
    """Parse BuildKit Definition bytes into an llb.Definition, op by op (see module doc)."""
    message = pb.Definition()
    try:
        message.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as e:
        raise DefinitionError(f"not a BuildKit definition ({_reason(e)})") from None
    where = _unknown_field(message, "Definition", skip=("metadata", "Source"))
    if where:
        raise UnsupportedError(f"unknown field {where} (not in BuildKit v0.11.6's format)")
    return _Decoder(message).run()


def _reason(e: Exception) -> str:
    return str(e).split("\n")[0] or type(e).__name__


def _unknown_field(message: Message, path: str, skip: tuple[str, ...] = ()) -> str | None:
    """The path of the first field `message` (or a message inside it) carries that the format
    does not define, e.g. `Op.exec.mounts[1]#25`."""
    unknown = UnknownFieldSet(message)
    if len(unknown):
        return f"{path}#{unknown[0].field_number}"
    for fd, value in message.ListFields():
        if fd.name in skip or fd.message_type is None:
            continue
        if fd.message_type.GetOptions().map_entry:
            continue  # maps of strings and bools only, in the ops llb reads
        if fd.is_repeated:
            for i, item in enumerate(value):
                found = _unknown_field(item, f"{path}.{fd.name}[{i}]")
                if found:
                    return found
        else:
            found = _unknown_field(value, f"{path}.{fd.name}")
            if found:
                return found
    return None


class _Decoder:
    def __init__(self, message: pb.Definition):
        self.message = message
        self.bk_ops: dict[str, pb.Op] = {}
        self.llb: dict[str, str] = {}  # BuildKit digest -> llb digest
        self.ops: dict[str, _ops.Op] = {}  # llb digest -> op, inputs first
        self.scratch = codec.op_digest(_SCRATCH)

    def run(self) -> Decoded:
        defs = list(getattr(self.message, "def"))
        if not defs:  # the Go client marshals scratch as an empty definition
            self.ops[self.scratch] = _SCRATCH
            return Decoded(Definition(self.ops, {}, _ops.Input(self.scratch, 0)), {})
        for i, data in enumerate(defs):
            op = pb.Op()
            try:
                op.ParseFromString(data)
            except (DecodeError, RuntimeError, ValueError) as e:
                raise DefinitionError(f"definition op {i} is not a BuildKit Op "
                                      f"({_reason(e)})") from None
            where = _unknown_field(op, "Op")
            if where:
                raise UnsupportedError(f"definition op {i} ({digest_of(data)[:19]}): unknown "
                                       f"field {where} (not in BuildKit v0.11.6's format)")
            self.bk_ops[digest_of(data)] = op
        terminal = self.bk_ops[digest_of(defs[-1])]
        if terminal.WhichOneof("op") is not None or len(terminal.inputs) != 1:
            raise DefinitionError("the last op of a BuildKit definition must name the result "
                                  "(no op, one input)")
        result = terminal.inputs[0]
        self._convert(result.digest)
        output = _ops.Input(self.llb[result.digest], result.index)
        metadata = {}
        for bk_digest, md in self.message.metadata.items():
            llb_digest = self.llb.get(bk_digest)
            if llb_digest is None or llb_digest in metadata:
                continue
            meta = _ops.OpMetadata(description=md.description.get(DESCRIPTION, ""),
                                   progress_name=md.description.get(CUSTOM_NAME, ""),
                                   ignore_cache=md.ignore_cache)
            if meta != _ops.OpMetadata():
                metadata[llb_digest] = meta
        definition = Definition(self.ops, metadata, output)
        definition.validate()
        return Decoded(definition, dict(self.llb))

    # ------------------------------------------------------------------ graph walk

    def _convert(self, root: str) -> None:
        """Convert `root` and everything it depends on, inputs first (no recursion: chains
        may be deep)."""
        visiting: set[str] = set()
        stack: list[tuple[str, bool]] = [(root, False)]
        while stack:
            digest, expanded = stack.pop()
            if digest in self.llb:
                continue
            op = self.bk_ops.get(digest)
            if op is None:
                raise DefinitionError(f"BuildKit op {digest[:80]} is referenced but not in the "
                                      f"definition", vertex=digest)
            if expanded:
                visiting.discard(digest)
                self._add(digest, op)
                continue
            if digest in visiting:
                raise DefinitionError(f"cycle through BuildKit op {digest}", vertex=digest)
            visiting.add(digest)
            stack.append((digest, True))
            for inp in reversed(op.inputs):
                if inp.digest not in self.llb:
                    if inp.digest in visiting:
                        raise DefinitionError(f"cycle through BuildKit op {inp.digest}",
                                              vertex=inp.digest)
                    stack.append((inp.digest, False))

    def _add(self, digest: str, op: pb.Op) -> None:
        try:
            llb_op = self._op(op)
            wire = codec.check_types(llb_op, _ops.Op)
            validate.check_op(llb_op)
        except FieldError as e:
            raise DefinitionError(f"BuildKit op {digest[:19]}: {e}", vertex=digest) from None
        except DefinitionError as e:
            cls = UnsupportedError if isinstance(e, UnsupportedError) else DefinitionError
            raise cls(f"BuildKit op {digest[:19]}: {e}", vertex=digest) from None
        llb_digest = digest_of(codec.pack(wire))
        self.llb[digest] = llb_digest
        self.ops.setdefault(llb_digest, llb_op)

    def _input(self, op: pb.Op, index: int, what: str) -> _ops.Input:
        """The llb input for BuildKit input index `index` of `op` (-1: scratch)."""
        if index == -1:
            self.ops.setdefault(self.scratch, _SCRATCH)
            return _ops.Input(self.scratch, 0)
        if not 0 <= index < len(op.inputs):
            raise DefinitionError(f"{what}: input {index} out of range (op has "
                                  f"{len(op.inputs)})")
        inp = op.inputs[index]
        return _ops.Input(self.llb[inp.digest], inp.index)

    # ------------------------------------------------------------------ ops

    def _op(self, op: pb.Op) -> _ops.Op:
        if op.HasField("platform"):
            p = op.platform
            os_, arch = host_platform()
            if p.OS != os_ or p.Architecture != arch or p.OSVersion or len(p.OSFeatures):
                shown = "/".join(x for x in (p.OS, p.Architecture, p.Variant) if x)
                raise UnsupportedError(f"platform {shown}: llb builds for {os_}/{arch} only")
        if op.HasField("constraints") and len(op.constraints.filter):
            raise UnsupportedError("worker constraints are not supported")
        kind = op.WhichOneof("op")
        if kind == "source":
            return self._source(op.source)
        if kind == "exec":
            return self._exec(op)
        if kind == "file":
            return self._file(op)
        if kind == "merge":
            if not op.merge.inputs:
                raise DefinitionError("merge has no inputs")
            return _ops.MergeOp(inputs=tuple(self._input(op, m.input, "merge")
                                             for m in op.merge.inputs))
        if kind == "diff":
            if not op.diff.HasField("lower") or not op.diff.HasField("upper"):
                raise DefinitionError("diff needs a lower and an upper input")
            return _ops.DiffOp(inputs=(self._input(op, op.diff.lower.input, "diff lower"),
                                       self._input(op, op.diff.upper.input, "diff upper")))
        if kind == "build":
            raise UnsupportedError("build ops (nested builds) are not supported")
        raise DefinitionError("an op with no operation may only be the last (the result)")

    def _source(self, src: pb.SourceOp) -> _ops.SourceOp:
        ident = src.identifier
        attrs = dict(src.attrs)
        if ident.startswith("local://"):
            include = _patterns(attrs.pop("local.includepattern", None), "local.includepattern")
            exclude = _patterns(attrs.pop("local.excludepatterns", None), "local.excludepatterns")
            for key in sorted(attrs):
                if key not in _IGNORED_LOCAL_ATTRS:
                    raise UnsupportedError(f"{ident}: source attribute {key} is not supported")
            return _ops.SourceOp(ident, include=include, exclude=exclude)
        if ident.startswith("docker-image://"):
            return _ops.SourceOp(ident, attrs=tuple(sorted(attrs.items())))
        scheme = ident.partition("://")[0] if "://" in ident else ident
        raise UnsupportedError(f"{scheme[:40]} sources are not supported")

    def _exec(self, op: pb.Op) -> _ops.ExecOp:
        ex = op.exec
        meta = ex.meta
        for name, present in (("proxy_env", meta.HasField("proxy_env")),
                              ("extraHosts", len(meta.extraHosts) > 0),
                              ("ulimit", len(meta.ulimit) > 0),
                              ("cgroupParent", bool(meta.cgroupParent)),
                              ("secretenv", len(ex.secretenv) > 0)):
            if present:
                raise UnsupportedError(f"exec {name} is not supported")
        if ex.security != pb.SANDBOX:
            raise UnsupportedError("exec security INSECURE is not supported")
        if ex.network not in _NETWORK:
            raise DefinitionError(f"exec network {ex.network} is unknown")
        inputs: list[_ops.Input] = []

        def index_of(inp: _ops.Input) -> int:
            if inp not in inputs:
                inputs.append(inp)
            return inputs.index(inp)

        mounts = [self._mount(op, m, index_of) for m in ex.mounts]
        env = list(meta.env)
        if not any(e.startswith("PATH=") for e in env):
            env.append("PATH=" + _ops.DEFAULT_PATH)  # what buildkitd and llb's DSL both add
        return _ops.ExecOp(inputs=tuple(inputs), args=tuple(meta.args), env=tuple(env),
                           cwd=meta.cwd or "/", user=meta.user, network=_NETWORK[ex.network],
                           hostname=meta.hostname, mounts=tuple(mounts))

    def _mount(self, op: pb.Op, m: pb.Mount, index_of: Callable[[_ops.Input], int]
               ) -> _ops.Mount:
        where = f"mount {m.dest[:200]}"
        if m.resultID:
            raise UnsupportedError(f"{where}: resultID mounts are not supported")
        if m.mountType == pb.BIND:
            if not m.readonly and m.output < 0:
                raise UnsupportedError(f"{where}: a writable mount without an output "
                                       f"(ForceNoOutput) is not supported")
            selector = clean("/" + m.selector) if m.selector else ""
            return _ops.Mount(dest=m.dest, input=index_of(self._input(op, m.input, where)),
                              output=m.output, selector="" if selector == "/" else selector,
                              readonly=m.readonly)
        if m.mountType == pb.CACHE:
            if m.input != -1:
                raise UnsupportedError(f"{where}: a cache mount based on a state is not supported")
            if m.readonly:
                raise UnsupportedError(f"{where}: read-only cache mounts are not supported")
            if not m.cacheOpt.ID:
                raise UnsupportedError(f"{where}: a cache mount without an id is not supported")
            return _ops.Mount(dest=m.dest, output=m.output, type=_ops.MOUNT_CACHE,
                              cache_id=m.cacheOpt.ID, sharing=_SHARING[m.cacheOpt.sharing])
        if m.mountType == pb.TMPFS:
            return _ops.Mount(dest=m.dest, output=m.output, type=_ops.MOUNT_TMPFS,
                              tmpfs_size=m.TmpfsOpt.size)
        kind = pb.MountType.Name(m.mountType) if m.mountType in pb.MountType.values() \
            else str(m.mountType)
        raise UnsupportedError(f"{where}: {kind} mounts are not supported")

    def _file(self, op: pb.Op) -> _ops.FileOp:
        actions = op.file.actions
        if not actions:
            raise DefinitionError("file op has no actions")
        n = len(op.inputs)
        first = actions[0].input
        if first >= n:
            raise DefinitionError(f"file action 0 reads action {first - n}, which comes later")
        inputs = [self._input(op, first, "file action 0")]
        out: list[_ops.FileAction] = []
        for i, fa in enumerate(actions):
            if i and fa.input != n + i - 1:
                raise UnsupportedError(f"file action {i} does not work on the result of action "
                                       f"{i - 1} (only a chain of actions is supported)")
            if fa.output != (0 if i + 1 == len(actions) else -1):
                raise UnsupportedError(f"file action {i}: only the last action may be the "
                                       f"result (output {fa.output})")
            out.append(self._action(op, fa, i, first, inputs))
        return _ops.FileOp(inputs=tuple(inputs), actions=tuple(out))

    def _action(self, op: pb.Op, fa: pb.FileAction, i: int, base: int,
                inputs: list[_ops.Input]) -> _ops.FileAction:
        kind = fa.WhichOneof("action")
        what = f"file action {i}"
        if kind == "mkdir":
            d = fa.mkdir
            return _ops.Mkdir(path=d.path, mode=d.mode, parents=d.makeParents,
                              owner=_owner(d, base, what), created=d.timestamp)
        if kind == "mkfile":
            f = fa.mkfile
            return _ops.Mkfile(path=f.path, data=f.data, mode=f.mode,
                               owner=_owner(f, base, what), created=f.timestamp)
        if kind == "rm":
            return _ops.Rm(path=fa.rm.path, allow_not_found=fa.rm.allowNotFound,
                           allow_wildcard=fa.rm.allowWildcard)
        if kind != "copy":
            raise DefinitionError(f"{what} has no action")
        c = fa.copy
        if c.attemptUnpackDockerCompatibility:
            raise UnsupportedError(f"{what} copy: attemptUnpackDockerCompatibility is not "
                                   f"supported")
        if fa.secondaryInput >= len(op.inputs):
            raise UnsupportedError(f"{what} copy: copying from another action's result is not "
                                   f"supported")
        src = self._input(op, fa.secondaryInput, f"{what} copy")
        if src not in inputs:
            inputs.append(src)
        dest = c.dest[:-1] if c.dest.endswith("/.") else c.dest  # "into", as llb writes it
        return _ops.Copy(source=inputs.index(src), src=c.src, dest=dest,
                         owner=_owner(c, base, what), mode=c.mode,
                         follow_symlinks=c.followSymlink,
                         copy_dir_contents_only=c.dirCopyContents,
                         create_dest_path=c.createDestPath, allow_wildcard=c.allowWildcard,
                         allow_empty_wildcard=c.allowEmptyWildcard,
                         include=tuple(c.include_patterns), exclude=tuple(c.exclude_patterns),
                         created=c.timestamp)


def _patterns(value: str | None, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    try:
        items = json.loads(value)
    except ValueError:
        raise DefinitionError(f"source attribute {what} is not a JSON list") from None
    if not isinstance(items, list) or not all(isinstance(p, str) for p in items):
        raise DefinitionError(f"source attribute {what} is not a JSON list of strings")
    return tuple(items)


def _owner(action: pb.FileActionCopy | pb.FileActionMkDir | pb.FileActionMkFile, base: int,
           what: str) -> str:
    """llb's "user[:group]" for a ChownOpt; names must be looked up in the base state."""
    if not action.HasField("owner"):
        return ""
    chown = action.owner
    if not chown.HasField("user"):
        if chown.HasField("group"):
            raise UnsupportedError(f"{what}: an owner with a group and no user is not supported")
        return ""
    user = _user(chown.user, base, what)
    return f"{user}:{_user(chown.group, base, what)}" if chown.HasField("group") else user


def _user(opt: pb.UserOpt, base: int, what: str) -> str:
    kind = opt.WhichOneof("user")
    if kind == "byID":
        return str(opt.byID)
    if kind == "byName":
        if opt.byName.input not in (base, -1):
            raise UnsupportedError(f"{what}: owner {opt.byName.name!r} looked up in another "
                                   f"input than the base is not supported")
        return opt.byName.name
    raise DefinitionError(f"{what}: owner has neither a name nor an id")
