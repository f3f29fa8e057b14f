"""File actions: mkdir, mkfile, rm and copy, chainable into one FileOp.

    llb.mkdir("/a", parents=True).mkfile("/a/b", b"data").rm("/a/old")

Actions hold the paths as written; `State.file` resolves relative paths against the state's
working directory (copy sources against the source state's) with `..` cleaned lexically.
"""

from __future__ import annotations

import datetime as _dt
from itertools import repeat
from operator import itemgetter

from llb import ops as _ops
from llb.errors import DefinitionError
from llb.node import Output
from llb.paths import is_clean_abs
from llb.validate import MAX_STRING

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from typing import Any

Owner = str | int | tuple[int | str, int | str] | None
Created = int | _dt.datetime | None

_new = object.__new__
_set = object.__setattr__  # (an op is frozen: its own __setattr__ refuses)
_OP_CLASS = {"mkdir": _ops.Mkdir, "mkfile": _ops.Mkfile, "rm": _ops.Rm}
_action_of = itemgetter("action")
_path_of = itemgetter("path")


class FileActions:
    """An immutable chain of file actions; apply with `State.file(actions)`.

    A chain is its last action plus the chain before it (a linked list), so adding an action
    copies nothing. An mkdir, mkfile or rm with default owner and time and values of exactly
    its op's field types is kept as `wire`: its op's fields (the path as written), which
    `finished_ops` turns into the op itself once the path is known to be absolute and clean
    (or which `State.file` resolves against the state's working directory). Any other action
    has wire None and is kept as `action` (its name), `options` (the keyword arguments of
    its op, paths as written) and `source` (a copy's source state), for `State.file` to
    build and check."""

    __slots__ = ("_prev", "_len", "wire", "_other")

    def __init__(self) -> None:
        self._prev: FileActions | None = None
        self._len = 0
        self.wire: dict[str, Any] | None = None
        # (action, options, source) of an action without a wire form
        self._other: tuple[str, dict[str, Any] | None, Output | None] = ("", None, None)

    @property
    def action(self) -> str:
        """The last action's name: "mkdir", "mkfile", "rm" or "copy"."""
        wire = self.wire
        return self._other[0] if wire is None else wire["action"]

    @property
    def options(self) -> dict[str, Any] | None:
        """The last action's op arguments (paths as written); None when it has a wire form."""
        return self._other[1] if self.wire is None else None

    @property
    def source(self) -> Output | None:
        """The state a copy reads (None for any other action)."""
        return self._other[2] if self.wire is None else None

    @property
    def op(self) -> _ops.FileAction | None:
        """The last action's op when it is finished (see finished_ops), else None."""
        wire = self.wire
        if wire is None or not _finished(wire):
            return None
        op: _ops.FileAction = _new(_OP_CLASS[wire["action"]])
        _set(op, "__dict__", dict(wire))
        return op

    @property
    def items(self) -> tuple[FileActions, ...]:
        """The actions in order: each the chain ending in it (its action, options, ...)."""
        if self._len == 1:
            return (self,)
        out = []
        chain: FileActions | None = self
        while chain is not None and chain._len:
            out.append(chain)
            chain = chain._prev
        out.reverse()
        return tuple(out)

    def wires(self) -> list[dict[str, Any] | None]:
        """Each action's wire form (None for one without), in order."""
        out = []
        chain = self
        while chain._len:
            out.append(chain.wire)
            chain = chain._prev  # type: ignore[assignment]  # (only the root has none)
        out.reverse()
        return out

    def __len__(self) -> int:
        return self._len

    def __repr__(self) -> str:
        return "FileActions(" + ", ".join(
            f"{a.action} {(a.options or a.wire or {}).get('path', '')}".strip()
            for a in self.items) + ")"

    def _wired(self, wire: dict[str, Any]) -> FileActions:
        chain = _Link()
        chain._prev = self
        chain._len = self._len + 1
        chain.wire = wire
        return chain

    def _add(self, action: str, source: Output | None = None, **options: Any) -> FileActions:
        chain = _Link()
        chain._prev = self
        chain._len = self._len + 1
        chain.wire = None
        chain._other = (action, options, source)
        return chain

    def mkdir(self, path: str, mode: int = 0o755, *, parents: bool = False,
              owner: Owner = None, created: Created = None) -> FileActions:
        """Create a directory (with parents: missing parents too, with the same mode)."""
        if owner is None and created is None and type(path) is str and path \
                and type(mode) is int and 0 <= mode <= 0o7777 and isinstance(parents, bool):
            return self._wired({"action": "mkdir", "created": -1, "mode": mode, "owner": "",
                                "parents": parents, "path": path})
        return self._add("mkdir", path=_str(path, "mkdir path"), mode=_mode(mode, "mkdir"),
                         parents=_bool(parents, "parents"), owner=owner_str(owner),
                         created=created_ns(created))

    def mkfile(self, path: str, data: bytes | str = b"", mode: int = 0o644, *,
               owner: Owner = None, created: Created = None) -> FileActions:
        """Create or replace a regular file with `data` (str is written as UTF-8)."""
        if type(data) is not bytes:
            if isinstance(data, str):
                data = data.encode()
            elif isinstance(data, (bytearray, memoryview)):
                data = bytes(data)
            elif not isinstance(data, bytes):
                raise DefinitionError(f"mkfile {path}: data must be bytes or str, not "
                                      f"{type(data).__name__}")
        if owner is None and created is None and type(path) is str and path \
                and type(data) is bytes and type(mode) is int and 0 <= mode <= 0o7777:
            # the common case; _wired inlined, for speed
            chain = _Link()
            chain._prev = self
            chain._len = self._len + 1
            chain.wire = {"action": "mkfile", "created": -1, "data": data, "mode": mode,
                          "owner": "", "path": path}
            return chain
        path = _str(path, "mkfile path")
        mode = _mode(mode, "mkfile")
        return self._add("mkfile", path=path, data=data, mode=mode, owner=owner_str(owner),
                         created=created_ns(created))

    def rm(self, path: str, *, allow_not_found: bool = False,
           allow_wildcard: bool = False) -> FileActions:
        """Remove a path recursively (a missing path is fine)."""
        if type(path) is str and path and isinstance(allow_not_found, bool) \
                and isinstance(allow_wildcard, bool):
            return self._wired({"action": "rm", "allow_not_found": allow_not_found,
                                "allow_wildcard": allow_wildcard, "path": path})
        return self._add("rm", path=_str(path, "rm path"),
                         allow_not_found=_bool(allow_not_found, "allow_not_found"),
                         allow_wildcard=_bool(allow_wildcard, "allow_wildcard"))

    def copy(self, source: Output, src: str, dest: str, *, owner: Owner = None,
             mode: int | None = None, follow_symlinks: bool = False,
             copy_dir_contents_only: bool = False, create_dest_path: bool = False,
             allow_wildcard: bool = False, allow_empty_wildcard: bool = False,
             include: list[str] | tuple[str, ...] = (), exclude: list[str] | tuple[str, ...] = (),
             created: Created = None, always_replace_existing: bool = False) -> FileActions:
        """Copy `src` of state `source` to `dest` (a trailing "/" on dest means "into")."""
        if not isinstance(source, Output):
            raise DefinitionError(f"copy {src}: source must be an llb.State, not "
                                  f"{type(source).__name__}")
        flags = {k: _bool(v, k) for k, v in (
            ("follow_symlinks", follow_symlinks), ("copy_dir_contents_only", copy_dir_contents_only),
            ("create_dest_path", create_dest_path), ("allow_wildcard", allow_wildcard),
            ("allow_empty_wildcard", allow_empty_wildcard),
            ("always_replace_existing", always_replace_existing))}
        return self._add("copy", source, src=_str(src, "copy src"), dest=_str(dest, "copy dest"),
                         owner=owner_str(owner), mode=-1 if mode is None else _mode(mode, "copy"),
                         include=patterns(include, "include"), exclude=patterns(exclude, "exclude"),
                         created=created_ns(created), **flags)


class _Link(FileActions):
    """A link of a chain past its root, made without FileActions.__init__ (its maker sets
    the slots): object's own __init__ lets `_Link()` run at C speed, where
    object.__new__(FileActions) went through a slower wrapper."""

    __slots__ = ()
    if not TYPE_CHECKING:
        __init__ = object.__init__


def _finished(wire: dict[str, Any]) -> bool:
    """True when the action of `wire` is valid as it is, whatever state it is applied to: an
    absolute clean path within the length limit (not "/" for mkfile); its other values
    were checked when it was written."""
    path = wire["path"]
    return len(path) <= MAX_STRING and is_clean_abs(path) \
        and (path != "/" or wire["action"] != "mkfile")


def finished_ops(wires: list[dict[str, Any] | None]) -> list[_ops.FileAction] | None:
    """The ops of a chain's actions (FileActions.wires), each with its wire form for
    __dict__, when every action is finished (see _finished); else None. The common case,
    absolute clean paths under "/", is told for all paths at once (C-speed scans of the
    paths joined by NUL, which no finished path holds), and the ops are made at C speed."""
    n = len(wires)
    try:
        paths: list[str] = list(map(_path_of, wires))  # type: ignore[arg-type]
    except TypeError:  # an action without a wire form (None)
        return None
    finished: list[dict[str, Any]] = wires  # type: ignore[assignment]  # (no None)
    joined = "\x00".join(paths)
    # n - 1 NULs, all separators, each followed by "/": every path starts with "/"; none
    # ends with "/" (so none is "/"), none holds "//" or "/." (a separator breaks both)
    if not (joined[0] == "/" and joined[-1] != "/" and joined.count("\x00") == n - 1
            and joined.count("\x00/") == n - 1 and "/\x00" not in joined
            and "//" not in joined and "/." not in joined
            and (len(joined) <= MAX_STRING or max(map(len, paths)) <= MAX_STRING)):
        if not all(map(_finished, finished)):
            return None
    ops: list[_ops.FileAction] = list(map(_new, map(_OP_CLASS.__getitem__,
                                                    map(_action_of, finished))))
    any(map(_set, ops, repeat("__dict__"), finished))  # (each returns None)
    return ops


def mkdir(path: str, mode: int = 0o755, *, parents: bool = False, owner: Owner = None,
          created: Created = None) -> FileActions:
    """Start a chain with mkdir (see FileActions.mkdir)."""
    return FileActions().mkdir(path, mode, parents=parents, owner=owner, created=created)


def mkfile(path: str, data: bytes | str = b"", mode: int = 0o644, *, owner: Owner = None,
           created: Created = None) -> FileActions:
    """Start a chain with mkfile (see FileActions.mkfile)."""
    return FileActions().mkfile(path, data, mode, owner=owner, created=created)


def rm(path: str, *, allow_not_found: bool = False, allow_wildcard: bool = False) -> FileActions:
    """Start a chain with rm (see FileActions.rm)."""
    return FileActions().rm(path, allow_not_found=allow_not_found, allow_wildcard=allow_wildcard)


def copy(source: Output, src: str, dest: str, **options: Any) -> FileActions:
    """Start a chain with copy (see FileActions.copy)."""
    return FileActions().copy(source, src, dest, **options)


# ---------------------------------------------------------------------------------- coercion


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise DefinitionError(f"{what} must be a non-empty string, not {value!r}")
    return value


def _bool(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise DefinitionError(f"{what} must be True or False, not {value!r}")
    return value


def _mode(value: Any, what: str) -> int:
    if type(value) is not int or not 0 <= value <= 0o7777:
        raise DefinitionError(f"{what} mode must be an int in 0..0o7777, not {value!r}")
    return value


def owner_str(owner: Owner) -> str:
    """"uid:gid" / "user:group" form of an owner option (an int means uid = gid)."""
    if owner is None or owner == "":
        return ""
    if isinstance(owner, bool):
        raise DefinitionError(f"owner must be 'user[:group]', an int or a pair, not {owner!r}")
    if isinstance(owner, int):
        if owner < 0:
            raise DefinitionError(f"owner {owner} must not be negative")
        return f"{owner}:{owner}"
    if isinstance(owner, tuple) and len(owner) == 2:
        return f"{owner[0]}:{owner[1]}"
    if isinstance(owner, str):
        return owner
    raise DefinitionError(f"owner must be 'user[:group]', an int or a pair, not {owner!r}")


def created_ns(created: Created) -> int:
    """Nanoseconds since the epoch for a `created` option (-1 = the time of the build)."""
    if created is None:
        return -1
    if isinstance(created, _dt.datetime):
        import calendar  # rare: kept off the import of every build file

        if created.tzinfo is None:
            secs = calendar.timegm(created.timetuple())
        else:
            secs = calendar.timegm(created.utctimetuple())
        return secs * 1_000_000_000 + created.microsecond * 1000
    if type(created) is int and created >= 0:
        return created
    raise DefinitionError(f"created must be a datetime or nanoseconds (int >= 0), not {created!r}")


def patterns(value: Any, what: str) -> tuple[str, ...]:
    """A tuple of gitignore-style patterns (a single string is one pattern)."""
    if isinstance(value, str):
        value = (value,)
    try:
        out = tuple(value)
    except TypeError:
        raise DefinitionError(f"{what} must be a list of patterns, not {value!r}") from None
    for p in out:
        if not isinstance(p, str) or not p:
            raise DefinitionError(f"{what} patterns must be non-empty strings, not {p!r}")
    return out
