"""File actions: mkdir, mkfile, rm and copy, chainable into one FileOp.

    llb.mkdir("/a", parents=True).mkfile("/a/b", b"data").rm("/a/old")

Actions hold the paths as written; `State.file` resolves relative paths against the state's
working directory (copy sources against the source state's) with `..` cleaned lexically.
"""

from __future__ import annotations

import datetime as _dt

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


_Mkfile = _ops.Mkfile


def _ready(cls: type, wire: dict[str, Any]) -> _ops.FileAction:
    """The action `cls` whose fields are `wire` (built without its __init__, as the codec's
    decoder does: the fields are already checked)."""
    op: _ops.FileAction = _new(cls)
    op.__dict__.update(wire)
    return op


class FileActions:
    """An immutable chain of file actions; apply with `State.file(actions)`.

    A chain is its last action plus the chain before it (a linked list), so adding an action
    copies nothing. The last action is `action` (its name), `options` (the keyword arguments
    of its op, paths as written) and `source` (a copy's source state). `op` and `wire` are
    the finished action and its wire form when they cannot depend on the state it is applied
    to and are known to be valid (an absolute clean path, values of exactly the op's field
    types, nothing validation would refuse): `State.file` then takes them as they are, and
    options is None. Otherwise both are None and `State.file` builds the action from
    options and checks it."""

    __slots__ = ("_prev", "_len", "finished", "action", "options", "source", "op", "wire")

    def __init__(self) -> None:
        self._prev: FileActions | None = None
        self._len = 0
        self.finished = 0  # how many actions of the chain are finished (op and wire set)
        self.action = ""
        self.options: dict[str, Any] | None = None
        self.source: Output | None = None
        self.op: _ops.FileAction | None = None
        self.wire: dict[str, Any] | None = None

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

    def __len__(self) -> int:
        return self._len

    def __repr__(self) -> str:
        return "FileActions(" + ", ".join(
            f"{a.action} {(a.options or a.wire or {}).get('path', '')}".strip()
            for a in self.items) + ")"

    def _push(self, action: str, options: dict[str, Any] | None, source: Output | None,
              op: _ops.FileAction | None, wire: dict[str, Any] | None) -> FileActions:
        chain = _new(FileActions)
        chain._prev = self
        chain._len = self._len + 1
        chain.finished = self.finished + (op is not None)
        chain.action = action
        chain.options = options
        chain.source = source
        chain.op = op
        chain.wire = wire
        return chain

    def _add(self, action: str, source: Output | None = None, **options: Any) -> FileActions:
        return self._push(action, options, source, None, None)

    def mkdir(self, path: str, mode: int = 0o755, *, parents: bool = False,
              owner: Owner = None, created: Created = None) -> FileActions:
        """Create a directory (with parents: missing parents too, with the same mode)."""
        if owner is None and created is None and type(path) is str and type(mode) is int \
                and 0 <= mode <= 0o7777 and isinstance(parents, bool) \
                and 0 < len(path) <= MAX_STRING and is_clean_abs(path):
            wire = {"action": "mkdir", "created": -1, "mode": mode, "owner": "",
                    "parents": parents, "path": path}
            return self._push("mkdir", None, None, _ready(_ops.Mkdir, wire), wire)
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
        if owner is None and created is None and type(path) is str and type(data) is bytes \
                and type(mode) is int and 0 <= mode <= 0o7777 and 1 < len(path) <= MAX_STRING \
                and (path[0] == "/" and path[-1] != "/" and "//" not in path and "/." not in path
                     and "\x00" not in path or is_clean_abs(path)):
            # the common case, finished here (see FileActions); _push inlined, for speed
            wire = {"action": "mkfile", "created": -1, "data": data, "mode": mode, "owner": "",
                    "path": path}
            op = _new(_Mkfile)
            op.__dict__.update(wire)
            chain = _new(FileActions)
            chain._prev = self
            chain._len = self._len + 1
            chain.finished = self.finished + 1
            chain.action = "mkfile"
            chain.options = chain.source = None
            chain.op = op
            chain.wire = wire
            return chain
        path = _str(path, "mkfile path")
        mode = _mode(mode, "mkfile")
        return self._add("mkfile", path=path, data=data, mode=mode, owner=owner_str(owner),
                         created=created_ns(created))

    def rm(self, path: str, *, allow_not_found: bool = False,
           allow_wildcard: bool = False) -> FileActions:
        """Remove a path recursively (a missing path is fine)."""
        if type(path) is str and isinstance(allow_not_found, bool) \
                and isinstance(allow_wildcard, bool) and 0 < len(path) <= MAX_STRING \
                and is_clean_abs(path):
            wire = {"action": "rm", "allow_not_found": allow_not_found,
                    "allow_wildcard": allow_wildcard, "path": path}
            return self._push("rm", None, None, _ready(_ops.Rm, wire), wire)
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
