"""Immutable build states: an op output plus the settings (env, cwd, user, ...) that later
runs inherit. Every method returns a new State; nothing is ever modified in place."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from llb import ops as _ops
from llb import validate
from llb.actions import FileActions, finished_ops
from llb.definition import Definition
from llb.errors import DefinitionError
from llb.imagemeta import ImageMeta, normalize_port
from llb.node import DEFAULT_SETTINGS, NO_META, Node, Output, Settings, new_node, node_meta
from llb.paths import resolve
from llb.values import replace

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from typing import Any
    from llb.mounts import MountSpec

_new = object.__new__


class State(Output):
    """One output of an op, plus env/cwd/user/hostname/network for later runs."""

    __slots__ = ()

    @property
    def op(self) -> _ops.Op:
        """The op producing this state."""
        return self._node.op

    @property
    def is_scratch(self) -> bool:
        """True for the empty state."""
        op = self._node.op
        return isinstance(op, _ops.SourceOp) and op.identifier == _ops.SCRATCH

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._node.op.kind} {self._node.digest[:19]}[{self._index}]>"

    def _with(self, **changes: Any) -> State:
        return State(self._node, self.output_index(), replace(self._settings, **changes))

    # ------------------------------------------------------------------ settings

    def env(self, key: str, value: str) -> State:
        """Set an environment variable for later runs (replacing an earlier value)."""
        if not isinstance(key, str) or not key or "=" in key or not isinstance(value, str):
            raise DefinitionError(f"env: key must be a non-empty string without '=' and value a "
                                  f"string, got {key!r}={value!r}")
        env = tuple(kv for kv in self._settings.env if kv[0] != key) + ((key, value),)
        return self._with(env=env)

    def del_env(self, key: str) -> State:
        """Unset an environment variable for later runs."""
        return self._with(env=tuple(kv for kv in self._settings.env if kv[0] != key))

    def get_env(self, key: str, default: str | None = None) -> str | None:
        """The value later runs get for `key`, or `default`."""
        for k, v in self._settings.env:
            if k == key:
                return v
        return default

    def env_list(self) -> list[str]:
        """The environment later runs get, as "KEY=value" strings in order."""
        return [f"{k}={v}" for k, v in self._settings.env]

    def cwd(self, path: str) -> State:
        """Set the working directory of later runs and relative file-action paths (a relative
        path is taken from the current one)."""
        if not isinstance(path, str) or not path:
            raise DefinitionError(f"cwd must be a non-empty path, not {path!r}")
        return self._with(cwd=resolve(self._settings.cwd, path))

    dir = cwd  # BuildKit's name

    def get_cwd(self) -> str:
        return self._settings.cwd

    get_dir = get_cwd

    def user(self, name: str | int) -> State:
        """Run later commands as `name` ("user[:group]", names or numbers)."""
        user = str(name) if isinstance(name, int) and not isinstance(name, bool) else name
        if not isinstance(user, str):
            raise DefinitionError(f"user must be a string or an int, not {name!r}")
        validate.check_owner(user, "user")
        return self._with(user=user)

    def get_user(self) -> str:
        return self._settings.user

    def hostname(self, name: str) -> State:
        """The hostname later runs see."""
        return self._with(hostname=name)

    def get_hostname(self) -> str:
        return self._settings.hostname

    def network(self, mode: str) -> State:
        """Network for later runs: "none" (the default, isolated) or "host"."""
        if mode not in validate.NETWORKS:
            raise DefinitionError(f"network must be one of {', '.join(validate.NETWORKS)}, "
                                  f"not {mode!r}")
        return self._with(network=mode)

    def get_network(self) -> str:
        return self._settings.network

    # ------------------------------------------------------------------ image config

    def entrypoint(self, args: str | Iterable[str]) -> State:
        """The exported image's Entrypoint (a str is split like a shell would; [] sets an
        empty one). Image metadata: no op digest changes."""
        return self._with(entrypoint=_argv(args, "entrypoint"))

    def cmd(self, args: str | Iterable[str]) -> State:
        """The exported image's Cmd (the entrypoint's default arguments). Image metadata."""
        return self._with(cmd=_argv(args, "cmd"))

    def label(self, key: str, value: str) -> State:
        """Set a label of the exported image (replacing an earlier value). Image metadata."""
        if not isinstance(key, str) or not key or not isinstance(value, str):
            raise DefinitionError(f"label: key must be a non-empty string and value a string, "
                                  f"got {key!r}={value!r}")
        labels = dict(self._settings.labels)
        labels[key] = value
        return self._with(labels=tuple(sorted(labels.items())))

    def expose(self, *ports: str | int) -> State:
        """Declare ports the image's process listens on: 80, "80/tcp", "53/udp" (tcp when
        no protocol is named). Image metadata."""
        if not ports:
            raise DefinitionError("expose: name at least one port")
        exposed = set(self._settings.expose) | {normalize_port(p) for p in ports}
        return self._with(expose=tuple(sorted(exposed)))

    def get_entrypoint(self) -> list[str] | None:
        e = self._settings.entrypoint
        return None if e is None else list(e)

    def get_cmd(self) -> list[str] | None:
        c = self._settings.cmd
        return None if c is None else list(c)

    def get_labels(self) -> dict[str, str]:
        return dict(self._settings.labels)

    def get_exposed(self) -> list[str]:
        return list(self._settings.expose)

    def image_meta(self) -> ImageMeta:
        """The image config an export of this state gets: env, cwd and user as later runs see
        them, plus entrypoint, cmd, labels and exposed ports."""
        s = self._settings
        return ImageMeta(env=tuple(f"{k}={v}" for k, v in s.env),
                         working_dir=s.cwd if s.cwd != "/" else "", user=s.user,
                         entrypoint=s.entrypoint, cmd=s.cmd, labels=s.labels, expose=s.expose)

    def with_(self, *fns: Callable[[State], State]) -> State:
        """Apply functions state -> state in order (BuildKit's State.With)."""
        state = self
        for fn in fns:
            state = fn(state)
            if not isinstance(state, State):
                raise DefinitionError(f"with_: {fn!r} returned {type(state).__name__}, "
                                      f"not a State")
        return state

    # ------------------------------------------------------------------ metadata

    def _with_meta(self, **changes: Any) -> State:
        node = self._node.with_meta(replace(self._node.meta, **changes))
        validate.check_metadata(node.meta)
        return State(node, self.output_index(), self._settings)

    def with_name(self, name: str) -> State:
        """Name the op producing this state in progress output (BuildKit's WithCustomName)."""
        return self._with_meta(progress_name=name)

    def with_description(self, description: str) -> State:
        """Attach a free-text description to the op producing this state."""
        return self._with_meta(description=description)

    def ignore_cache(self) -> State:
        """Always re-run the op producing this state (metadata; the digest is unchanged)."""
        return self._with_meta(ignore_cache=True)

    # ------------------------------------------------------------------ ops

    def run(self, args: str | Iterable[str], *, mounts: Iterable[MountSpec] = (),
            env: Mapping[str, str] | Iterable[str] | None = None, cwd: str | None = None,
            user: str | int | None = None, readonly_rootfs: bool = False,
            network: str | None = None, hostname: str | None = None,
            ignore_cache: bool = False, name: str = "", description: str = "") -> ExecState:
        """Run a command on this state. A str is split like a shell would (shlex); a list is
        used as is. env/cwd/user/network/hostname apply to this run and the states it gives."""
        state = self
        for k, v in _env_pairs(env):
            state = state.env(k, v)
        if cwd is not None:
            state = state.cwd(cwd)
        if user is not None:
            state = state.user(user)
        if network is not None:
            state = state.network(network)
        if hostname is not None:
            state = state.hostname(hostname)
        if isinstance(args, str):
            import shlex  # (loaded by a build file that runs a command line only)

            try:
                argv = shlex.split(args)
            except ValueError as e:
                raise DefinitionError(f"run {args!r}: {e}") from None
        else:
            argv = list(args)
        if not argv or not all(isinstance(a, str) for a in argv):
            raise DefinitionError(f"run: args must be a non-empty command, got {args!r}")
        from llb.exec import build_exec  # (a build file that runs nothing never loads it)

        built = build_exec(state, argv, list(mounts), bool(readonly_rootfs),
                           name=name, description=description, ignore_cache=ignore_cache)
        return ExecState(built.node, built.root_output, state.settings, built.mount_outputs)

    def file(self, actions: FileActions, *, name: str = "", description: str = "",
             ignore_cache: bool = False) -> State:
        """Apply a chain of file actions to this state, as one FileOp."""
        if not isinstance(actions, FileActions) or not len(actions):
            raise DefinitionError("file() takes a chain of file actions, e.g. llb.mkdir(...)")
        base = self.output
        wires = actions.wires()
        ops = finished_ops(wires) if len(wires) <= validate.MAX_ITEMS else None
        if ops is not None:
            # every action is finished and valid whatever this state is (see FileActions):
            # the op and its wire form are assembled from them, valid by construction
            op = _new(_ops.FileOp)
            op.__dict__.update({"actions": tuple(ops), "inputs": (base,), "kind": "file"})
            wire = {"actions": wires,
                    "inputs": [{"digest": base.digest, "index": base.index}], "kind": "file"}
            node = Node.checked(op, wire, (self._node,),
                                node_meta(name, description, ignore_cache))
            return State(node, 0, self._settings)
        nodes: list[Node] = [self._node]
        inputs: list[_ops.Input] = [base]
        cwd = self._settings.cwd
        out: list[_ops.FileAction] = []
        for item in actions.items:
            action = item.action
            finished = item.op
            if finished is not None:
                out.append(finished)
                continue
            written = item.wire  # (its path not absolute and clean, or another refused)
            opts: dict[str, Any] = dict(item.options or {}) if written is None else \
                {k: v for k, v in written.items() if k != "action"}
            try:
                if action == "mkdir":
                    out.append(_ops.Mkdir(**{**opts, "path": resolve(cwd, opts["path"])}))
                elif action == "mkfile":
                    out.append(_ops.Mkfile(**{**opts, "path": resolve(cwd, opts["path"])}))
                elif action == "rm":
                    out.append(_ops.Rm(**{**opts, "path": resolve(cwd, opts["path"])}))
                else:
                    src_state = item.source
                    assert src_state is not None
                    inp = src_state.output
                    if inp in inputs:
                        index = inputs.index(inp)
                    else:
                        index = len(inputs)
                        inputs.append(inp)
                        nodes.append(src_state.node)
                    src = resolve(src_state.settings.cwd, opts.pop("src"))
                    dest = resolve(cwd, opts.pop("dest"), keep_slash=True)
                    out.append(_ops.Copy(source=index, src=src, dest=dest, **opts))
            except ValueError as e:
                raise DefinitionError(f"{action}: {e}") from None
        op = _ops.FileOp(inputs=tuple(inputs), actions=tuple(out))
        node = new_node(op, tuple(nodes), name=name, description=description,
                        ignore_cache=ignore_cache)
        return State(node, 0, self._settings)

    # ------------------------------------------------------------------ marshal

    def to_definition(self) -> Definition:
        """The definition of everything this state depends on (identical ops are one vertex)."""
        output = self.output
        ops: dict[str, _ops.Op] = {}
        op_bytes: dict[str, bytes] = {}
        metadata: dict[str, _ops.OpMetadata] = {}
        seen = {id(self._node)}
        stack: list[tuple[Node, int]] = [(self._node, 0)]
        while stack:
            node, i = stack[-1]
            if i < len(node.inputs):
                stack[-1] = (node, i + 1)
                child = node.inputs[i]
                if id(child) not in seen:
                    seen.add(id(child))
                    stack.append((child, 0))
                continue
            stack.pop()
            digest = node.digest
            if digest not in ops:
                ops[digest] = node.op
                op_bytes[digest] = node.data
            if node.meta is not NO_META and node.meta != NO_META:
                metadata[digest] = _merge_meta(metadata.get(digest), node.meta)
        image = self.image_meta()
        return Definition(ops, metadata, output, image=None if image.is_empty() else image,
                          _op_bytes=op_bytes, _checked=True)


class ExecState(State):
    """The result of `State.run`: its root filesystem (as a State) and writable mounts."""

    __slots__ = ("_mount_outputs",)

    def __init__(self, node: Node, index: int | None, settings: Settings,
                 mount_outputs: dict[str, int | None]):
        super().__init__(node, index, settings)
        self._mount_outputs = mount_outputs

    def root(self) -> State:
        """The root filesystem after the command ran."""
        return State(self._node, self.output_index(), self._settings)

    def get_mount(self, dest: str) -> State:
        """The contents of the writable mount at `dest` after the command ran."""
        path = resolve(self._settings.cwd, dest) if isinstance(dest, str) and dest else dest
        if path == "/":
            return self.root()
        if path not in self._mount_outputs:
            known = ", ".join(sorted(self._mount_outputs)) or "none"
            raise DefinitionError(f"exec has no mount at {dest!r} (mounts: {known})",
                                  vertex=self._node.digest)
        index = self._mount_outputs[path]
        if index is None:
            raise DefinitionError(f"mount {path} is read-only, a cache or a tmpfs: it has no "
                                  f"output", vertex=self._node.digest)
        return State(self._node, index, DEFAULT_SETTINGS)


def _merge_meta(a: _ops.OpMetadata | None, b: _ops.OpMetadata) -> _ops.OpMetadata:
    if a is None:
        return b
    return _ops.OpMetadata(description=a.description or b.description,
                           progress_name=a.progress_name or b.progress_name,
                           ignore_cache=a.ignore_cache or b.ignore_cache)


def _argv(args: str | Iterable[str], what: str) -> tuple[str, ...]:
    if isinstance(args, str):
        import shlex

        try:
            return tuple(shlex.split(args))
        except ValueError as e:
            raise DefinitionError(f"{what} {args!r}: {e}") from None
    try:
        argv = tuple(args)
    except TypeError:
        raise DefinitionError(f"{what}: expected a command (str or list of str), "
                              f"got {args!r}") from None
    if not all(isinstance(a, str) for a in argv):
        raise DefinitionError(f"{what}: every argument must be a string, got {args!r}")
    return argv


def _env_pairs(env: Mapping[str, str] | Iterable[str] | None) -> list[tuple[str, str]]:
    if env is None:
        return []
    if isinstance(env, Mapping):
        return list(env.items())
    if isinstance(env, str):
        raise DefinitionError(f"env must be a mapping or a list of KEY=value, not {env!r}")
    pairs = []
    for item in env:
        if isinstance(item, str):
            key, sep, value = item.partition("=")
            if not sep:
                raise DefinitionError(f"env entry {item!r} must be KEY=value")
            pairs.append((key, value))
        else:
            key, value = item
            pairs.append((key, value))
    return pairs


__all__ = ["State", "ExecState"]
