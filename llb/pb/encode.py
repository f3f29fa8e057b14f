"""llb.Definition -> BuildKit's LLB (a `pb.Definition`), op for op as BuildKit's Go client
(client/llb, v0.11.6) marshals the same program, so both give byte-identical ops and digests.

What BuildKit has no op for is resolved away, as the Go client does: scratch is no op (an
input index of -1), a merge drops scratch inputs (a merge of one input is that input) and
`diff(scratch, x)` is x. The platform, the constraints and the metadata caps are what the
Go client writes: every op but local sources, merges and diffs names the host's platform.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from llb import ops as _ops
from llb.codec import digest_of
from llb.definition import Definition
from llb.pb import ops_pb2 as pb
from llb.pb.errors import UnsupportedError
from llb.pb.gojson import string_list

__all__ = ["Encoded", "encode", "host_platform", "CUSTOM_NAME", "DESCRIPTION"]

CUSTOM_NAME = "llb.customname"  # BuildKit's key for a vertex's progress name
DESCRIPTION = "llb.description"  # llb's free-text description (BuildKit keeps any key)
_UNIQUE = "local.unique"
OCI_STORE = "oci.store"  # BuildKit's attribute naming the client's content store of a layout
# the repository an oci-layout identifier names: BuildKit reads only its digest (the Go
# client's users write a placeholder too)
OCI_REPOSITORY = "llb/layout"
_INCLUDE = "local.includepattern"
_EXCLUDE = "local.excludepatterns"
_DEFAULT_PATH_ENV = "PATH=" + _ops.DEFAULT_PATH
_GOARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
           "i386": "386", "i686": "386", "ppc64le": "ppc64le", "s390x": "s390x",
           "riscv64": "riscv64"}
_SHARING = {_ops.SHARING_SHARED: pb.SHARED, _ops.SHARING_PRIVATE: pb.PRIVATE,
            _ops.SHARING_LOCKED: pb.LOCKED}

# a BuildKit output: (op digest, output index); None is scratch
BKOut = tuple[str, int] | None


def host_platform() -> tuple[str, str]:
    """(OS, Architecture) of this machine in Go's names: the platform llb builds for."""
    machine = os.uname().machine
    return "linux", _GOARCH.get(machine, machine)


@dataclass
class Encoded:
    """A definition in BuildKit's wire format: `data` (Definition bytes), `vertex` (llb op
    digest -> the BuildKit op digest it became, or None for what became nothing: scratch) and
    `output` (the BuildKit output of the result, None for scratch)."""

    message: pb.Definition
    vertex: dict[str, str | None]
    output: BKOut
    ops: list[str] = field(default_factory=list)  # BuildKit op digests, definition order
    # OCI layouts the daemon reads from the client's session: store ID -> the layout as the
    # definition names it (a --oci-layout NAME, or an absolute path)
    layouts: dict[str, str] = field(default_factory=dict)

    @property
    def data(self) -> bytes:
        return self.message.SerializeToString(deterministic=True)

    def with_names(self, names: Mapping[str, str]) -> bytes:
        """The definition bytes with the progress name of each BuildKit op in `names`
        (digest -> name) replaced: metadata only, digests unchanged."""
        message = pb.Definition()
        message.CopyFrom(self.message)
        for digest, name in names.items():
            message.metadata[digest].description[CUSTOM_NAME] = name
        return message.SerializeToString(deterministic=True)


def encode(definition: Definition, *, local_unique: str | None = None,
           platform: tuple[str, str] | None = None,
           layout_pins: Mapping[str, str] | None = None) -> Encoded:
    """`definition` as BuildKit LLB. local_unique: the `local.unique` attribute of local
    sources (the Go client draws a random one per marshal; default: one derived from the
    definition's output, so the same program gives the same bytes). layout_pins: the digest
    each oci-layout source named by tag names now (BuildKit reads layouts by digest only)."""
    definition.validate()
    if local_unique is None:
        local_unique = digest_of(definition.output.digest.encode())[7:32]
    return _Encoder(definition, local_unique, platform or host_platform(),
                    dict(layout_pins or {})).run()


class _Encoder:
    def __init__(self, definition: Definition, local_unique: str, platform: tuple[str, str],
                 layout_pins: dict[str, str]):
        self.d = definition
        self.pins = layout_pins
        self.unique = local_unique
        self.platform = platform
        self.alias: dict[str, BKOut] = {}  # llb digest -> what it stands for (single output)
        self.bk: dict[str, str] = {}  # llb digest -> BuildKit digest
        self.out = pb.Definition()
        self.order: list[str] = []
        self.meta: dict[str, pb.OpMetadata] = {}
        self.layouts: dict[str, str] = {}

    def run(self) -> Encoded:
        for digest, op in self.d.ops.items():
            try:
                self._op(digest, op)
            except UnsupportedError as e:
                raise UnsupportedError(f"{op.kind} op {digest[:19]}: {e}", vertex=digest) from None
        output = self._ref(self.d.output)
        vertex: dict[str, str | None] = {}
        for digest in self.d.ops:
            if digest in self.bk:
                vertex[digest] = self.bk[digest]
            else:
                ref = self.alias[digest]
                vertex[digest] = None if ref is None else ref[0]
        if output is None:  # the Go client marshals scratch as an empty Definition
            return Encoded(pb.Definition(), vertex, None, [], dict(self.layouts))
        for bk_digest in self.order:
            self.out.metadata[bk_digest].CopyFrom(self.meta[bk_digest])
        terminal = pb.Op(inputs=[pb.Input(digest=output[0], index=output[1])])
        data = terminal.SerializeToString(deterministic=True)
        getattr(self.out, "def").append(data)
        end = self.out.metadata[digest_of(data)]
        end.caps["constraints"] = True
        end.caps["platform"] = True
        if any(m.description for m in self.meta.values()):
            end.caps["meta.description"] = True
        if any(m.ignore_cache for m in self.meta.values()):
            end.caps["meta.ignorecache"] = True
        self.out.Source.SetInParent()
        return Encoded(self.out, vertex, output, list(self.order), dict(self.layouts))

    # ------------------------------------------------------------------ helpers

    def _ref(self, inp: _ops.Input) -> BKOut:
        if inp.digest in self.alias:
            return self.alias[inp.digest]
        return self.bk[inp.digest], inp.index

    def _emit(self, digest: str, op: pb.Op, caps: list[str], platform: bool = True) -> None:
        if platform:
            op.platform.OS, op.platform.Architecture = self.platform
        op.constraints.SetInParent()
        data = op.SerializeToString(deterministic=True)
        bk_digest = digest_of(data)
        self.bk[digest] = bk_digest
        meta = self.d.metadata.get(digest)
        if bk_digest not in self.meta:
            self.meta[bk_digest] = pb.OpMetadata()
            self.order.append(bk_digest)
            getattr(self.out, "def").append(data)
        md = self.meta[bk_digest]
        for cap in caps:
            md.caps[cap] = True
        if meta is not None:
            if meta.progress_name and CUSTOM_NAME not in md.description:
                md.description[CUSTOM_NAME] = meta.progress_name
            if meta.description and DESCRIPTION not in md.description:
                md.description[DESCRIPTION] = meta.description
            if meta.ignore_cache:
                md.ignore_cache = True

    def _op(self, digest: str, op: _ops.Op) -> None:
        if isinstance(op, _ops.SourceOp):
            self._source(digest, op)
        elif isinstance(op, _ops.ExecOp):
            self._exec(digest, op)
        elif isinstance(op, _ops.FileOp):
            self._file(digest, op)
        elif isinstance(op, _ops.MergeOp):
            self._merge(digest, op)
        else:
            self._diff(digest, op)

    # ------------------------------------------------------------------ ops

    def _source(self, digest: str, op: _ops.SourceOp) -> None:
        ident = op.identifier
        if ident == _ops.SCRATCH:
            self.alias[digest] = None
            return
        source = pb.SourceOp(identifier=ident)
        attrs = dict(op.attrs)
        if ident.startswith("local://"):
            caps = ["source.local", "source.local.unique"]
            attrs[_UNIQUE] = self.unique
            if op.include:
                attrs[_INCLUDE] = string_list(op.include)
                caps.append("source.local.includepatterns")
            if op.exclude:
                attrs[_EXCLUDE] = string_list(op.exclude)
                caps.append("source.local.excludepatterns")
            platform = False
        elif ident.startswith("docker-image://"):
            caps = ["source.image"]
            if "image.resolvemode" in attrs:
                caps.append("source.image.resolvemode")
            platform = True
        elif ident.startswith("oci-layout://"):
            source.identifier, store = self._layout(ident)
            attrs[OCI_STORE] = store
            caps = ["source.ocilayout"]
            platform = True
        else:
            scheme = ident.partition("://")[0]
            raise UnsupportedError(f"{scheme} sources have no BuildKit encoding")
        for k, v in attrs.items():
            source.attrs[k] = v
        self._emit(digest, pb.Op(source=source), caps, platform)

    def _layout(self, ident: str) -> tuple[str, str]:
        """An oci-layout source as BuildKit v0.11.6 reads it: `oci-layout://REPO@DIGEST`
        from the content store `oci.store` the client attaches (`buildctl --oci-layout
        STORE=DIR`). A layout named NAME is store NAME; one named by its path, a store ID
        derived from the path. BuildKit reads a layout by digest only: one named by tag
        must be in the pins."""
        locator = ident[len("oci-layout://"):]
        if ident in self.pins:
            locator = locator.rpartition(":")[0] + "@" + self.pins[ident]
        pinned = re.match(r"^(.+)@(sha256:[0-9a-f]{64})$", locator)
        if pinned is None:
            raise UnsupportedError(f"{ident[:200]}: BuildKit v0.11.6 reads an OCI layout by "
                                   "digest only (solve with a resolver, or give digest=)")
        where, digest = pinned.groups()
        store = ("layout-" + digest_of(where.encode())[7:23]) if where.startswith("/") else where
        self.layouts[store] = where
        return f"oci-layout://{OCI_REPOSITORY}@{digest}", store

    def _exec(self, digest: str, op: _ops.ExecOp) -> None:
        bk = pb.Op()
        inputs: list[tuple[str, int]] = []
        caps = ["exec.meta.base"]
        mounts = []
        for m in op.mounts:
            index = -1
            if m.type == _ops.MOUNT_BIND:
                ref = self._ref(op.inputs[m.input])
                if ref is not None:
                    if ref not in inputs:
                        inputs.append(ref)
                    index = inputs.index(ref)
            pm = pb.Mount(input=index, selector=m.selector, dest=m.dest, output=m.output,
                          readonly=m.readonly)
            if m.selector:
                caps.append("exec.mount.selector")
            if m.type == _ops.MOUNT_CACHE:
                pm.mountType = pb.CACHE
                pm.cacheOpt.ID = m.cache_id
                pm.cacheOpt.sharing = _SHARING[m.sharing]
                caps += ["exec.mount.cache", "exec.mount.cache.sharing"]
            elif m.type == _ops.MOUNT_TMPFS:
                pm.mountType = pb.TMPFS
                pm.TmpfsOpt.SetInParent()
                pm.TmpfsOpt.size = m.tmpfs_size
                caps.append("exec.mount.tmpfs")
                if m.tmpfs_size > 0:
                    caps.append("exec.mount.tmpfs.size")
            elif index >= 0:
                caps.append("exec.mount.bind")
            mounts.append(pm)
        bk.inputs.extend(pb.Input(digest=d, index=i) for d, i in inputs)
        meta = bk.exec.meta
        meta.args.extend(op.args)
        meta.env.extend(_env(op.env))
        meta.cwd = op.cwd
        meta.user = op.user
        meta.hostname = op.hostname
        meta.removeMountStubsRecursive = True
        bk.exec.mounts.extend(mounts)
        if op.network == _ops.NETWORK_HOST:
            bk.exec.network = pb.HOST
            caps.append("exec.meta.network")
        self._emit(digest, bk, caps)

    def _file(self, digest: str, op: _ops.FileOp) -> None:
        inputs: list[tuple[str, int]] = []

        def index_of(inp: _ops.Input) -> int:
            ref = self._ref(inp)
            if ref is None:
                return -1
            if ref not in inputs:
                inputs.append(ref)
            return inputs.index(ref)

        caps = ["file.base"]
        actions = []
        for i, a in enumerate(op.actions):
            base = index_of(op.inputs[0])  # the Go client adds the base for every action
            fa = pb.FileAction(secondaryInput=-1, output=-1 if i + 1 < len(op.actions) else 0)
            if isinstance(a, _ops.Copy):
                fa.secondaryInput = index_of(op.inputs[a.source])
                fa.copy.CopyFrom(_copy(a, base))
                if a.include or a.exclude:
                    caps.append("file.copy.includeexcludepatterns")
            elif isinstance(a, _ops.Mkdir):
                fa.mkdir.CopyFrom(pb.FileActionMkDir(
                    path=a.path, mode=a.mode, makeParents=a.parents, timestamp=a.created))
                _chown(fa.mkdir, a.owner, base)
            elif isinstance(a, _ops.Mkfile):
                fa.mkfile.CopyFrom(pb.FileActionMkFile(
                    path=a.path, mode=a.mode, data=a.data, timestamp=a.created))
                _chown(fa.mkfile, a.owner, base)
            else:
                fa.rm.CopyFrom(pb.FileActionRm(path=a.path, allowNotFound=a.allow_not_found,
                                               allowWildcard=a.allow_wildcard))
            actions.append((fa, base))
        n = len(inputs)
        for i, (fa, base) in enumerate(actions):
            fa.input = base if i == 0 else n + i - 1  # later actions work on the previous result
        bk = pb.Op(inputs=[pb.Input(digest=d, index=i) for d, i in inputs])
        bk.file.actions.extend(fa for fa, _ in actions)
        self._emit(digest, bk, caps)

    def _merge(self, digest: str, op: _ops.MergeOp) -> None:
        refs = [r for r in (self._ref(i) for i in op.inputs) if r is not None]
        if len(refs) <= 1:  # nothing or one input left: the merge is that input
            self.alias[digest] = refs[0] if refs else None
            return
        bk = pb.Op(inputs=[pb.Input(digest=d, index=i) for d, i in refs])
        bk.merge.inputs.extend(pb.MergeInput(input=i) for i in range(len(refs)))
        self._emit(digest, bk, ["mergeop"], platform=False)

    def _diff(self, digest: str, op: _ops.DiffOp) -> None:
        lower, upper = self._ref(op.inputs[0]), self._ref(op.inputs[1])
        if lower is None:  # diff(scratch, x) is x
            self.alias[digest] = upper
            return
        bk = pb.Op(inputs=[pb.Input(digest=lower[0], index=lower[1])])
        bk.diff.lower.SetInParent()
        bk.diff.upper.SetInParent()
        if upper is None:
            bk.diff.upper.input = -1
        else:
            bk.inputs.append(pb.Input(digest=upper[0], index=upper[1]))
            bk.diff.upper.input = 1
        self._emit(digest, bk, ["diffop"], platform=False)


def _env(env: tuple[str, ...]) -> list[str]:
    """The exec's environment without the default PATH llb's DSL appends when a state sets
    none: the Go client leaves it out, and buildkitd adds the same default itself."""
    out = list(env)
    if out and out[-1] == _DEFAULT_PATH_ENV and not any(e.startswith("PATH=") for e in out[:-1]):
        out.pop()
    return out


def _copy(a: _ops.Copy, base: int) -> pb.FileActionCopy:
    if a.always_replace_existing:
        raise UnsupportedError(f"copy {a.src} {a.dest}: always_replace_existing needs "
                               f"BuildKit v0.12 (v0.11.6 has no such option)")
    c = pb.FileActionCopy(src=a.src, dest=a.dest, mode=a.mode, followSymlink=a.follow_symlinks,
                          dirCopyContents=a.copy_dir_contents_only,
                          createDestPath=a.create_dest_path, allowWildcard=a.allow_wildcard,
                          allowEmptyWildcard=a.allow_empty_wildcard, timestamp=a.created)
    c.include_patterns.extend(a.include)
    c.exclude_patterns.extend(a.exclude)
    _chown(c, a.owner, base)
    return c


def _chown(action: pb.FileActionCopy | pb.FileActionMkDir | pb.FileActionMkFile, owner: str,
           base: int) -> None:
    """An owner "user[:group]" as the Go client's WithUser marshals it: numbers (and "root")
    by id, anything else by name, looked up in the base input."""
    if not owner:
        return
    user, _, group = owner.partition(":")
    _user_opt(action.owner.user, user, base)
    if group:
        _user_opt(action.owner.group, group, base)


def _user_opt(opt: pb.UserOpt, name: str, base: int) -> None:
    uid = _parse_uid(name)
    if uid is None:
        opt.byName.name = name
        opt.byName.input = base
    else:
        opt.byID = uid & 0xFFFFFFFF


def _parse_uid(text: str) -> int | None:
    """Go's parseUID: "root" is 0; strconv.ParseInt(s, 10, 32) (an optional sign, digits)."""
    if text == "root":
        return 0
    digits = text[1:] if text[:1] in "+-" else text
    if not digits or not digits.isascii() or not digits.isdigit():
        return None
    value = int(text)
    return value if -(1 << 31) <= value < (1 << 31) else None
