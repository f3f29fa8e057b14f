"""Record: typing.NamedTuple's classes, made by collections.namedtuple without typing.
NamedTuple checks every annotation as a forward reference, compiling each one (~1.8M
instructions a class, at every `llb` command); a Record subclass is the same namedtuple
(fields, defaults, methods, docstring, annotations kept as written) for ~0.3M. Type
checkers see typing.NamedTuple itself."""

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
            cls = collections.namedtuple(name, fields, defaults=defaults,
                                         module=ns["__module__"])
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
