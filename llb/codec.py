"""Canonical msgpack for ops: sorted keys, no floats, bytes stay bytes.

An op's wire form is a map of all its fields (nested dataclasses become maps, tuples become
arrays); its digest is "sha256:" + the hex sha256 of those bytes. Decoding is driven by the
type hints in `llb.ops`, so it accepts exactly what encoding produces and nothing else.
"""

from __future__ import annotations

import itertools
import sys
import types
from collections.abc import Callable, Iterable


import msgpack

from llb import ops as _ops
from llb.errors import DefinitionError
from llb.values import field_names, fixed_fields

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from typing import Any

try:  # CPython's own SHA-256 (_sha2 from 3.12, _sha256 before): hashing the short strings of
    # digests and cache keys without hashlib, whose import loads OpenSSL (~3 ms per command);
    # the version picks the name, as a failed import searches all of sys.path (~0.4M
    # instructions)
    if sys.version_info >= (3, 12):
        from _sha2 import sha256 as _own_sha256  # type: ignore[import-not-found]
    else:
        from _sha256 import sha256 as _own_sha256  # type: ignore[import-not-found]
except ImportError:
    from hashlib import sha256 as _own_sha256

# CPython's own SHA-256 costs ~4 ms a MiB, OpenSSL's (SHA extensions) ~5x less but ~5 ms to
# load (hashlib ~6 ms): a process switches to OpenSSL once it has hashed this much, about
# where the two break even, so that loading it never costs more than it saves twice over (a
# 10,000-action build, 0.8 MiB of ops, stays under it)
_OWN_SHA256_BUDGET = 1 << 20
_own_hashed = 0
_openssl_sha256: Any = None


def sha256(data: bytes = b"") -> Any:
    """A SHA-256 hash object fed `data` (hashlib's interface): CPython's own implementation
    while this process has hashed little, OpenSSL's once it has hashed more."""
    global _own_hashed, _openssl_sha256
    if _openssl_sha256 is not None:
        return _openssl_sha256(data)
    _own_hashed += len(data)
    if _own_hashed <= _OWN_SHA256_BUDGET:
        return _own_sha256(data)
    try:  # OpenSSL's, without the rest of hashlib (~1 ms more)
        from _hashlib import openssl_sha256
    except ImportError:
        from hashlib import sha256 as openssl_sha256

    _openssl_sha256 = openssl_sha256
    return openssl_sha256(data)

_packb = msgpack.packb


class FieldError(Exception):
    """A value at `path` (a list of keys, innermost last) has the wrong shape."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message
        self.path: list[str] = []

    def where(self) -> str:
        return "".join(self.path).lstrip(".")

    def __str__(self) -> str:
        where = self.where()
        return f"{where}: {self.message}" if where else self.message


# ---------------------------------------------------------------------------------- encode

_SORTED_FIELDS: dict[type, tuple[str, ...]] = {}
_PRIMITIVES = (str, int, bool, bytes)


def _fields_of(cls: type) -> tuple[str, ...]:
    names = _SORTED_FIELDS.get(cls)
    if names is None:
        own = field_names(cls)
        if own is None:
            import dataclasses

            own = tuple(f.name for f in dataclasses.fields(cls))
        names = tuple(sorted(own))
        _SORTED_FIELDS[cls] = names
    return names


def _is_dataclass(cls: type) -> bool:
    """dataclasses.is_dataclass for a class, without importing dataclasses for a value
    class (llb.values) or making its dataclass fields."""
    return field_names(cls) is not None or hasattr(cls, "__dataclass_fields__")


def to_wire(value: Any) -> Any:
    """The msgpack-ready form of an op (or any nested op value)."""
    t = type(value)
    if t is tuple:
        if all(type(x) in _PRIMITIVES for x in value):
            return value
        return [to_wire(x) for x in value]
    if t in _PRIMITIVES:
        return value
    if t in _SORTED_FIELDS or _is_dataclass(t):
        return {name: to_wire(getattr(value, name)) for name in _fields_of(t)}
    raise DefinitionError(f"cannot encode a {t.__name__} value in an op")


def pack(obj: Any) -> bytes:
    """Canonical msgpack bytes of an already wire-shaped object."""
    return _packb(obj, use_bin_type=True)


def encode_op(op: _ops.Op) -> bytes:
    """The canonical msgpack bytes of `op`."""
    return _packb(to_wire(op), use_bin_type=True)


def digest_of(data: bytes) -> str:
    """ "sha256:<hex>" of `data`."""
    return "sha256:" + sha256(data).hexdigest()


def op_digest(op: _ops.Op) -> str:
    """The digest of an op: sha256 over its canonical msgpack encoding."""
    return digest_of(encode_op(op))


# ---------------------------------------------------------------------------------- decode

if TYPE_CHECKING:
    Decoder = Callable[[Any], Any]
_DECODERS: dict[Any, Decoder] = {}


def typename(value: Any) -> str:
    return {dict: "map", list: "array", str: "string", bytes: "bytes", bool: "bool",
            int: "integer", float: "float", type(None): "nil"}.get(type(value), type(value).__name__)


def _primitive(tp: type, label: str) -> Decoder:
    def decode(v: Any) -> Any:
        if type(v) is not tp:
            raise FieldError(f"expected {label}, got {typename(v)}")
        return v
    return decode


def _tag_field(cls: type) -> tuple[str, Any] | None:
    if field_names(cls) is not None:  # a value class: its dataclass fields are not needed
        fixed = fixed_fields(cls)
        return fixed[0] if fixed else None
    import dataclasses

    for f in dataclasses.fields(cls):
        if not f.init:
            return f.name, f.default
    return None


_PRIMITIVE_CHECKS = {str: "a string", bool: "a bool", int: "an integer", bytes: "bytes"}


def fields_problem(owner: str, keys: list[str], v: dict) -> str:
    """Why map `v` does not have exactly the sorted `keys` of `owner` (a field too many, one
    missing, or the canonical order broken)."""
    extra = sorted(set(map(str, v)) - set(keys))
    if extra:
        return f"unknown field {extra[0][:40]!r} in {owner}"
    missing = sorted(set(keys) - set(map(str, v)))
    if missing:
        return f"missing field {missing[0]!r} in {owner}"
    return f"fields of {owner} not in sorted order"


def _fields_error(cls: type, keys: list[str], v: dict) -> FieldError:
    return FieldError(fields_problem(cls.__name__, keys, v))


def _wrong(where: str, label: str, value: Any) -> FieldError:
    e = FieldError(f"expected {label}, got {typename(value)}")
    e.path.append(where)
    return e


def _locate(where: str, decode: Decoder, items: list) -> FieldError:
    """The error of the first item `decode` rejects, with its index in the path."""
    for j, item in enumerate(items):
        try:
            decode(item)
        except FieldError as e:
            e.path.insert(0, f"{where}[{j}]")
            return e
    return FieldError("inconsistent decoder")  # pragma: no cover


def _dataclass_decoder(cls: type) -> Decoder:
    """Generated code (one function per dataclass): decoding runs once per op on load, so it
    avoids per-field calls and builds the frozen instance without its __init__."""
    import typing  # (a process that decodes nothing never loads it)

    hints = typing.get_type_hints(cls)  # each class (and base) in its own module
    names = _fields_of(cls)
    tag = _tag_field(cls)
    env: dict[str, Any] = {"FieldError": FieldError, "typename": typename, "_wrong": _wrong,
                           "_fields_error": _fields_error, "cls": cls, "KEYS": list(names),
                           "new": object.__new__, "_locate": _locate}
    lines = ["def decode(v):",
             "    if type(v) is not dict:",
             "        raise FieldError('expected a map, got ' + typename(v))",
             "    if list(v) != KEYS:",
             "        raise _fields_error(cls, KEYS, v)"]
    if tag:
        env["TAG"] = tag[1]
        lines += [f"    if v[{tag[0]!r}] != TAG:",
                  f"        raise FieldError({tag[0]!r} + ' must be ' + repr(TAG))"]
    for i, name in enumerate(names):
        if tag and name == tag[0]:
            continue
        tp = hints[name]
        lines.append(f"    x{i} = v[{name!r}]")
        args = typing.get_args(tp)
        if tp in _PRIMITIVE_CHECKS:
            env[f"T{i}"] = tp
            lines += [f"    if type(x{i}) is not T{i}:",
                      f"        raise _wrong({'.' + name!r}, {_PRIMITIVE_CHECKS[tp]!r}, x{i})"]
        elif typing.get_origin(tp) is tuple and len(args) == 2 and args[1] is Ellipsis:
            # tuple[X, ...] inline: one comprehension, the failing index found only on error
            lines += [f"    if type(x{i}) is not list:",
                      f"        raise _wrong({'.' + name!r}, 'an array', x{i})"]
            if args[0] in _PRIMITIVE_CHECKS:
                env[f"T{i}"] = args[0]
                lines += [f"    for e in x{i}:",
                          f"        if type(e) is not T{i}:",
                          f"            raise _wrong({'.' + name!r} + '[' + str(x{i}.index(e)) + ']', "
                          f"{_PRIMITIVE_CHECKS[args[0]]!r}, e)",
                          f"    x{i} = tuple(x{i})"]
            else:
                env[f"E{i}"] = decoder_for(args[0])
                lines += ["    try:",
                          f"        x{i} = tuple([E{i}(e) for e in x{i}])",
                          "    except FieldError:",
                          f"        raise _locate({'.' + name!r}, E{i}, x{i}) from None"]
        else:
            env[f"D{i}"] = decoder_for(tp)
            lines += ["    try:",
                      f"        x{i} = D{i}(x{i})",
                      "    except FieldError as e:",
                      f"        e.path.insert(0, {'.' + name!r})",
                      "        raise"]
    lines.append("    obj = new(cls)")
    items = ", ".join(f"{name!r}: {'TAG' if tag and name == tag[0] else f'x{i}'}"
                      for i, name in enumerate(names))
    lines.append(f"    obj.__dict__.update({{{items}}})")
    lines.append("    return obj")
    exec("\n".join(lines), env)  # noqa: S102 - code generated from our own dataclass fields
    return env["decode"]


def _union_decoder(members: tuple[type, ...]) -> Decoder:
    tags = [_tag_field(m) for m in members]
    if any(t is None for t in tags) or len({t[0] for t in tags}) != 1:  # type: ignore[index]
        raise TypeError(f"union {members} is not discriminated by one tag field")
    tag_name = tags[0][0]  # type: ignore[index]
    # a member's decoder is generated when a value with its tag is first decoded: most loads
    # use few op kinds, and generating all of them costs start-up time of every command
    member_by_tag = {t[1]: m for t, m in zip(tags, members)}  # type: ignore[index]
    by_tag: dict[Any, Decoder] = {}

    def decode(v: Any) -> Any:
        if type(v) is not dict:
            raise FieldError(f"expected a map, got {typename(v)}")
        if tag_name not in v:
            raise FieldError(f"missing field {tag_name!r}")
        value = v[tag_name]
        dec = by_tag.get(value) if type(value) is str else None
        if dec is None:
            member = member_by_tag.get(value) if type(value) is str else None
            if member is not None:
                dec = by_tag[value] = decoder_for(member)
                return dec(v)
            known = ", ".join(sorted(member_by_tag))
            raise FieldError(f"unknown {tag_name} {str(value)[:40]!r} (known: {known})")
        return dec(v)
    return decode


def _tuple_decoder(args: tuple[Any, ...]) -> Decoder:
    if len(args) == 2 and args[1] is Ellipsis:
        elem = decoder_for(args[0])
        prim = args[0] if args[0] in _PRIMITIVE_CHECKS else None

        def decode_var(v: Any) -> Any:
            _check_array(v)
            if prim is not None and all(type(x) is prim for x in v):
                return tuple(v)
            return _decode_items(itertools.repeat(elem), v)
        return decode_var
    elems = [decoder_for(a) for a in args]

    def decode_fixed(v: Any) -> Any:
        _check_array(v)
        if len(v) != len(elems):
            raise FieldError(f"expected {len(elems)} items, got {len(v)}")
        return _decode_items(elems, v)
    return decode_fixed


def _check_array(v: Any) -> None:
    if type(v) is not list:
        raise FieldError(f"expected an array, got {typename(v)}")


def _decode_items(decoders: Iterable[Decoder], v: list) -> tuple:
    """Each item of `v` through its decoder; an error names the item's index."""
    out = []
    for i, (dec, x) in enumerate(zip(decoders, v)):
        try:
            out.append(dec(x))
        except FieldError as e:
            e.path.insert(0, f"[{i}]")
            raise
    return tuple(out)


def decoder_for(tp: Any) -> Decoder:
    """A function turning the wire form of type `tp` back into a value, or raising FieldError."""
    dec = _DECODERS.get(tp)
    if dec is not None:
        return dec
    import typing

    origin = typing.get_origin(tp)
    if tp is str:
        dec = _primitive(str, "a string")
    elif tp is bool:
        dec = _primitive(bool, "a bool")
    elif tp is int:
        dec = _primitive(int, "an integer")
    elif tp is bytes:
        dec = _primitive(bytes, "bytes")
    elif origin is tuple:
        dec = _tuple_decoder(typing.get_args(tp))
    elif origin in (typing.Union, types.UnionType):
        dec = _union_decoder(typing.get_args(tp))
    elif isinstance(tp, type) and _is_dataclass(tp):
        dec = _dataclass_decoder(tp)
    else:
        raise TypeError(f"no wire decoder for {tp!r}")
    _DECODERS[tp] = dec
    return dec


def check_types(value: Any, tp: Any) -> Any:
    """Raise FieldError unless `value` (an op built in Python) has exactly the field types of
    `tp`; returns its wire form (checked by the same rules as decoding)."""
    wire = wire_lists(value)
    decoder_for(tp)(wire)
    return wire


def wire_lists(value: Any) -> Any:
    """Like to_wire, but every sequence becomes a list and nothing is type-checked."""
    t = type(value)
    if t in _PRIMITIVES:
        return value
    if t is tuple or t is list:
        return [x if type(x) in _PRIMITIVES else wire_lists(x) for x in value]
    names = _SORTED_FIELDS.get(t)
    if names is None:
        if isinstance(value, type) or not _is_dataclass(t):
            return value  # not a wire value: the decoder rejects it with its type name
        names = _fields_of(t)
    return {name: wire_lists(getattr(value, name)) for name in names}
