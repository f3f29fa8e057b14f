"""Frozen value classes made cheaply: the dataclasses of ops and DSL values (llb.ops,
llb.node, llb.mounts, llb.imagemeta) behave as @dataclass(frozen=True) ones, but their
__init__, __eq__, __hash__, __repr__ and frozen __setattr__/__delattr__ are written once
here instead of compiled per class by dataclasses (~1 ms a class, at every `llb` command),
and the dataclasses module itself (with inspect, ast, dis and tokenize behind it, ~40M
instructions) is loaded only when something asks for a class's dataclass fields."""

from __future__ import annotations

import _thread

from llb.records import Valued

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from dataclasses import Field
    from typing import Any, Callable, ClassVar, TypeVar

    _V = TypeVar("_V", bound=type)
    _T = TypeVar("_T", bound="Value")


class Value(Valued):
    """Equality, hashing, frozenness (llb.records.Valued) and repr as dataclass(frozen=True,
    eq=True, repr=True) defines them (`Name(f=...)`), and (through value_class) its
    __init__."""

    __slots__ = ()
    # value_class: every field's name in order (the bases' first), and the __init__
    # parameters (name, default or _REQUIRED); a field __init__ does not take is read from
    # its class attribute, as a dataclass's is
    if TYPE_CHECKING:  # (not runtime annotations: get_type_hints of a value class reads them)
        _field_names: ClassVar[tuple[str, ...]]
        _init_params: ClassVar[tuple[tuple[str, Any], ...]]
        __dataclass_fields__: ClassVar[dict[str, Field[Any]]]  # made on first use

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._field_names)

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._field_names)
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


_REQUIRED = object()
_LOCK = _thread.RLock()


class _Field:
    """field(default=..., init=False) of a value class, read by value_class."""

    __slots__ = ("default", "init")

    def __init__(self, default: Any, init: bool) -> None:
        self.default = default
        self.init = init


class _DataclassFields:
    """A value class's __dataclass_fields__, made by dataclasses on first use (fields(),
    replace(), is_dataclass), so a command that never asks does not import dataclasses."""

    def __get__(self, obj: object, cls: type) -> dict[str, Any]:
        if "_field_specs" not in cls.__dict__:
            raise AttributeError("__dataclass_fields__")
        with _LOCK:
            made = cls.__dict__.get("__dataclass_fields__")
            if made is None:
                made = _dataclass_fields(cls)
        return made


def _dataclass_fields(cls: type) -> dict[str, Any]:
    """Run @dataclass(init=False, eq=False, repr=False) on a stand-in holding cls's fields
    (the bases' first, as declared) and give cls the fields and params it made: one
    assignment each, so no reader ever sees a half-made class."""
    import dataclasses

    ns: dict[str, Any] = {"__annotations__": {}, "__module__": cls.__module__,
                          "__qualname__": cls.__qualname__, "__doc__": cls.__doc__}
    for base in reversed(cls.__mro__):
        for name, (annotation, default, init) in base.__dict__.get("_field_specs", {}).items():
            ns["__annotations__"][name] = annotation
            if not init:
                ns[name] = dataclasses.field(default=default, init=False)
            elif default is not _REQUIRED:
                ns[name] = default
            else:
                ns.pop(name, None)
    stand_in: Any = dataclasses.dataclass(init=False, eq=False, repr=False)(
        type(cls.__name__, (), ns))
    made: dict[str, Any] = stand_in.__dataclass_fields__
    setattr(cls, "__dataclass_params__", stand_in.__dataclass_params__)
    setattr(cls, "__dataclass_fields__", made)
    return made


setattr(Value, "__dataclass_fields__", _DataclassFields())


if TYPE_CHECKING:
    from dataclasses import dataclass as value_class
    from dataclasses import field
else:
    def field(*, default: Any, init: bool = True) -> Any:
        """dataclasses.field(default=..., init=...) for a value class's field."""
        return _Field(default, init)

    def value_class(*, frozen: bool, eq: bool, repr: bool) -> Callable[[_V], _V]:
        """@dataclass(frozen=True, eq=False, repr=False) for a Value subclass, without the
        functions dataclass would compile per class (__init__, __setattr__, __delattr__;
        ~2.5M instructions a class, at every command): Value's generic ones do the same
        from the fields' list, read here from the class's annotations (ClassVar ones are
        not fields). The class is a dataclass to fields(), replace() and is_dataclass
        (its __dataclass_fields__ made on first use) that cannot be changed once made; DSL
        and decoder hot paths fill __dict__ directly anyway. Fields take plain defaults (no
        default_factory)."""
        assert frozen and not eq and not repr

        def wrap(cls: _V) -> _V:
            specs: dict[str, tuple[Any, Any, bool]] = {}
            for name, annotation in cls.__dict__.get("__annotations__", {}).items():
                text = annotation if isinstance(annotation, str) else repr_(annotation)
                if text.startswith(("ClassVar", "typing.ClassVar")):
                    continue
                assert not text.startswith(("InitVar", "dataclasses.InitVar")), cls
                default = cls.__dict__.get(name, _REQUIRED)
                init = True
                if isinstance(default, _Field):
                    default, init = default.default, default.init
                    setattr(cls, name, default)
                assert type(default) not in (list, dict, set), (cls, name)
                specs[name] = (annotation, default, init)
            cls._field_specs = specs
            every: dict[str, tuple[Any, bool]] = {}
            for base in reversed(cls.__mro__):
                for name, (_, default, init) in base.__dict__.get("_field_specs", {}).items():
                    every[name] = (default, init)
            cls._field_names = tuple(every)
            cls._init_params = tuple((name, default) for name, (default, init) in every.items()
                                     if init)
            if "__match_args__" not in cls.__dict__:
                cls.__match_args__ = tuple(name for name, _ in cls._init_params)
            return cls
        return wrap

    repr_ = repr


def field_names(cls: type) -> tuple[str, ...] | None:
    """The names of a value class's fields in order (dataclasses.fields' names, without
    making them); None for any other class."""
    return getattr(cls, "_field_names", None)


def fixed_fields(cls: type) -> list[tuple[str, Any]]:
    """(name, value) of each field of a value class that __init__ does not take (its value
    is the class attribute's)."""
    taken = {name for name, _ in getattr(cls, "_init_params", ())}
    return [(name, getattr(cls, name)) for name in getattr(cls, "_field_names", ())
            if name not in taken]


def replace(obj: _T, /, **changes: Any) -> _T:
    """dataclasses.replace for a value class's instance: a copy with `changes` to fields
    __init__ takes (TypeError for another name, ValueError for a field it does not)."""
    cls = obj.__class__
    params = cls._init_params
    if changes:
        names = {name for name, _ in params}
        for name in changes:
            if name not in names:
                if name in cls._field_names:
                    raise ValueError(f"field {name} is declared with init=False, it cannot "
                                     "be specified with replace()")
                raise TypeError(f"{cls.__qualname__}.__init__() got an unexpected keyword "
                                f"argument {name!r}")
    new = object.__new__(cls)
    d = vars(new)
    for name, _ in params:
        d[name] = changes[name] if name in changes else getattr(obj, name)
    return new
