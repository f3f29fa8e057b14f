"""Frozen value classes made cheaply: the dataclasses of ops and DSL values (llb.ops,
llb.node, llb.mounts, llb.imagemeta) behave as @dataclass(frozen=True) ones, but their
__init__, __eq__, __hash__, __repr__ and frozen __setattr__/__delattr__ are written once
here instead of compiled per class by dataclasses (~1 ms a class, at every `llb` command)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Callable, ClassVar, TypeVar


class Value:
    """Equality, hashing and repr as dataclass(frozen=True, eq=True, repr=True) defines them
    (same class and equal fields; hash of the field values; `Name(f=...)`), and (through
    value_class) its __init__ and frozen __setattr__/__delattr__."""

    __slots__ = ()
    __dataclass_fields__: ClassVar[dict[str, Any]]  # set by @dataclass on every subclass
    # value_class: the __init__ parameters (name, default or _REQUIRED); a field __init__
    # does not take is read from its class attribute, as a dataclass's is
    _init_params: ClassVar[tuple[tuple[str, Any], ...]]

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__dataclass_fields__)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return self._values() == other._values()
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__dataclass_fields__)
        return f"{self.__class__.__qualname__}({fields})"

    if not TYPE_CHECKING:  # type checkers see each op's own __init__ (a frozen dataclass's)
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            cls = self.__class__
            params = cls._init_params
            if len(args) > len(params):
                raise TypeError(f"{cls.__qualname__}.__init__() takes at most {len(params)} "
                                f"positional arguments but {len(args)} were given")
            d = self.__dict__
            for (name, default), value in zip(params, args):
                d[name] = value
            for name, default in params[len(args):]:
                value = kwargs.pop(name, _REQUIRED)
                if value is _REQUIRED:
                    if default is _REQUIRED:
                        raise TypeError(f"{cls.__qualname__}.__init__() missing required "
                                        f"argument: {name!r}")
                    value = default
                d[name] = value
            if kwargs:
                name = next(iter(kwargs))
                twice = any(name == n for n, _ in params[:len(args)])
                raise TypeError(f"{cls.__qualname__}.__init__() got "
                                + (f"multiple values for argument {name!r}" if twice else
                                   f"an unexpected keyword argument {name!r}"))

        def __setattr__(self, name: str, value: Any) -> None:
            raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")

        def __delattr__(self, name: str) -> None:
            raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")


_REQUIRED = object()
_V = TypeVar("_V", bound=type)

if TYPE_CHECKING:
    from dataclasses import dataclass as value_class
else:
    def value_class(*, frozen: bool, eq: bool, repr: bool) -> Callable[[_V], _V]:
        """@dataclass(frozen=True, eq=False, repr=False) for a Value subclass, without the
        functions dataclass would compile per class (__init__, __setattr__, __delattr__;
        ~2.5M instructions a class, at every command): Value's generic ones do the same
        from the fields' list. The class is a dataclass (fields(), replace(), is_dataclass)
        that cannot be changed once made; DSL and decoder hot paths fill __dict__ directly
        anyway. Fields take plain defaults (no default_factory)."""
        assert frozen and not eq and not repr

        def wrap(cls: _V) -> _V:
            cls = dataclasses.dataclass(init=False, eq=False, repr=False)(cls)
            fields = dataclasses.fields(cls)
            assert all(f.default_factory is dataclasses.MISSING for f in fields), cls
            cls._init_params = tuple(
                (f.name, _REQUIRED if f.default is dataclasses.MISSING else f.default)
                for f in fields if f.init)
            return cls
        return wrap
