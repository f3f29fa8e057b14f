"""Record: typing.NamedTuple's classes, made without typing. NamedTuple checks every
annotation as a forward reference, compiling each one (~1.8M instructions a class, at every
`llb` command); a Record subclass is the same named tuple (fields, defaults, methods,
docstring, annotations kept as written), built as collections.namedtuple builds one but
without compiling its `__new__` from source (~0.2M instructions a class): that is a
precompiled function of as many arguments with its argument names replaced. Type checkers
see typing.NamedTuple itself."""

from __future__ import annotations

import collections

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (mypy knows the name)

__all__ = ["Generic", "Record", "Valued"]

if TYPE_CHECKING:
    from typing import Generic
    from typing import NamedTuple as Record
else:
    # what NamedTuple neither copies from the class body nor lets it define
    _SPECIAL = frozenset({"__module__", "__name__", "__annotations__"})
    _PROHIBITED = frozenset({"__new__", "__init__", "__slots__", "__getnewargs__", "_fields",
                             "_field_defaults", "_make", "_replace", "_asdict", "_source"})

    import sys
    from collections import _tuplegetter  # namedtuple's field descriptor (C)
    from types import FunctionType

    _tuple_new = tuple.__new__
    # __new__ of 1..12 fields, as namedtuple's source for them compiles, names replaced
    _NEW = (
        lambda _cls, a: _tuple_new(_cls, (a,)),
        lambda _cls, a, b: _tuple_new(_cls, (a, b)),
        lambda _cls, a, b, c: _tuple_new(_cls, (a, b, c)),
        lambda _cls, a, b, c, d: _tuple_new(_cls, (a, b, c, d)),
        lambda _cls, a, b, c, d, e: _tuple_new(_cls, (a, b, c, d, e)),
        lambda _cls, a, b, c, d, e, f: _tuple_new(_cls, (a, b, c, d, e, f)),
        lambda _cls, a, b, c, d, e, f, g: _tuple_new(_cls, (a, b, c, d, e, f, g)),
        lambda _cls, a, b, c, d, e, f, g, h: _tuple_new(_cls, (a, b, c, d, e, f, g, h)),
        lambda _cls, a, b, c, d, e, f, g, h, i: _tuple_new(_cls, (a, b, c, d, e, f, g, h, i)),
        lambda _cls, a, b, c, d, e, f, g, h, i, j: _tuple_new(
            _cls, (a, b, c, d, e, f, g, h, i, j)),
        lambda _cls, a, b, c, d, e, f, g, h, i, j, k: _tuple_new(
            _cls, (a, b, c, d, e, f, g, h, i, j, k)),
        lambda _cls, a, b, c, d, e, f, g, h, i, j, k, l: _tuple_new(  # noqa: E741
            _cls, (a, b, c, d, e, f, g, h, i, j, k, l)),
    )

    def _named_tuple(name, fields, defaults, module):
        """collections.namedtuple(name, fields, defaults=defaults, module=module), the same
        class, but for a __new__ made from _NEW rather than compiled."""
        if not 0 < len(fields) <= len(_NEW) or len(set(fields)) != len(fields) \
                or any(f.startswith("_") or not f.isidentifier() for f in fields):
            return collections.namedtuple(name, fields, defaults=defaults, module=module)
        fields = tuple(map(sys.intern, fields))
        n = len(fields)
        code = _NEW[n - 1].__code__.replace(co_varnames=("_cls", *fields), co_name="__new__",
                                            co_qualname=f"{name}.__new__")
        new = FunctionType(code, globals(), "__new__", tuple(defaults) or None)
        new.__doc__ = f"Create new instance of {name}({', '.join(fields)})"
        repr_fmt = "(" + ", ".join(f"{f}=%r" for f in fields) + ")"

        def _make(cls, iterable):
            result = _tuple_new(cls, iterable)
            if len(result) != n:
                raise TypeError(f"Expected {n} arguments, got {len(result)}")
            return result

        _make.__doc__ = f"Make a new {name} object from a sequence or iterable"

        def _replace(self, /, **kwds):
            result = self._make(map(kwds.pop, fields, self))
            if kwds:
                raise ValueError(f"Got unexpected field names: {list(kwds)!r}")
            return result

        _replace.__doc__ = f"Return a new {name} object replacing specified fields with new values"

        def __repr__(self):
            "Return a nicely formatted representation string"
            return self.__class__.__name__ + repr_fmt % self

        def _asdict(self):
            "Return a new dict which maps field names to their values."
            return dict(zip(self._fields, self))

        def __getnewargs__(self):
            "Return self as a plain tuple.  Used by copy and pickle."
            return tuple(self)

        for method in (_make, _replace, __repr__, _asdict, __getnewargs__):
            method.__qualname__ = f"{name}.{method.__name__}"
        namespace = {
            "__doc__": f"{name}({', '.join(fields)})", "__slots__": (), "_fields": fields,
            "_field_defaults": dict(zip(fields[n - len(defaults):], defaults)),
            "__new__": new, "_make": classmethod(_make), "_replace": _replace,
            "__repr__": __repr__, "_asdict": _asdict, "__getnewargs__": __getnewargs__,
            "__match_args__": fields,
        }
        for index, field in enumerate(fields):
            namespace[field] = _tuplegetter(index, sys.intern(f"Alias for field number {index}"))
        cls = type(name, (tuple,), namespace)
        cls.__module__ = module
        return cls

    class _RecordMeta(type):
        def __new__(mcls, name, bases, ns):
            if ns.get("__qualname__") == "Record" and ns.get("__module__") == __name__:
                return super().__new__(mcls, name, bases, ns)
            assert bases == (Record,), f"{name}: a Record derives from Record alone"
            annotations = ns.get("__annotations__", {})
            fields = [n for n, a in annotations.items()
                      if not (isinstance(a, str) and a.startswith(("ClassVar", "typing.ClassVar")))]
            defaults = []
            for n in fields:
                if n in ns:
                    defaults.append(ns[n])
                elif defaults:
                    raise TypeError(f"Non-default namedtuple field {n} cannot follow default "
                                    f"field{'s' if len(defaults) > 1 else ''} "
                                    f"{', '.join(f for f in fields if f in ns)}")
            cls = _named_tuple(name, fields, defaults, ns["__module__"])
            cls.__annotations__ = dict(annotations)
            for key, value in ns.items():
                if key in _PROHIBITED:
                    raise AttributeError("Cannot overwrite NamedTuple attribute " + key)
                if key not in _SPECIAL and key not in cls._fields:
                    setattr(cls, key, value)
            return cls

    class Record(metaclass=_RecordMeta):
        """Derive a class from Record as from typing.NamedTuple."""


class Valued:
    """Equality, hashing and frozenness as a frozen dataclass's (same class, equal field
    values; the hash of those values; FrozenInstanceError on assignment), for value classes
    written out rather than made by @dataclass: a subclass gives its field values in order
    from _values() and sets its fields with object.__setattr__."""

    __slots__ = ()

    def _values(self) -> tuple[object, ...]:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return self._values() == other._values()
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._values())

    def __setattr__(self, name: str, value: object) -> None:
        import dataclasses

        raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        import dataclasses

        raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")


if not TYPE_CHECKING:
    class Generic:
        """typing.Generic's subscription (`class C(Generic[T])`) at run time, where typing is
        not loaded: C[X] and Generic[T] are C and Generic themselves."""

        def __class_getitem__(cls, params: object) -> type:
            return cls
