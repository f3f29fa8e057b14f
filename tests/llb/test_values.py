"""llb.values: the ops and DSL value classes behave as the frozen dataclasses they were (and
still are to fields(), replace() and type checkers), with nothing compiled per class."""

from __future__ import annotations

import copy
import dataclasses
import pickle

import pytest

from llb import imagemeta, mounts, node, ops
from llb.values import Value


@dataclasses.dataclass(frozen=True)
class _Reference:  # what ops.Mkfile was, field for field
    path: str
    data: bytes = b""
    mode: int = 0o644
    owner: str = ""
    created: int = -1
    action: str = dataclasses.field(default="mkfile", init=False)


def test_an_op_is_what_its_frozen_dataclass_was() -> None:
    op, ref = ops.Mkfile("/a", b"x", mode=0o600), _Reference("/a", b"x", mode=0o600)
    assert vars(op) == vars(ref)
    assert repr(op) == repr(ref).replace("_Reference", "Mkfile")
    assert hash(op) == hash(ref)
    assert op == ops.Mkfile(path="/a", data=b"x", mode=0o600) and op != ops.Mkfile("/a")
    assert op != ref  # another class
    assert [f.name for f in dataclasses.fields(op)] == [f.name for f in dataclasses.fields(ref)]
    assert dataclasses.is_dataclass(op)
    assert dataclasses.replace(op, mode=0o644) == ops.Mkfile("/a", b"x")
    assert pickle.loads(pickle.dumps(op)) == op and copy.deepcopy(op) == op


def test_an_op_cannot_change() -> None:
    op = ops.Input("sha256:" + "0" * 64)
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'index'"):
        op.index = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot delete field 'digest'"):
        del op.digest  # type: ignore[misc]
    assert op.index == 0


@pytest.mark.parametrize("make, message", [
    (lambda: ops.Mkfile(), "missing required argument: 'path'"),
    (lambda: ops.Mkfile("/a", path="/b"), "multiple values for argument 'path'"),
    (lambda: ops.Mkfile("/a", bogus=1), "unexpected keyword argument 'bogus'"),
    (lambda: ops.Mkfile("/a", action="rm"), "unexpected keyword argument 'action'"),
    (lambda: ops.Input("d", 0, 1), "takes at most 2 positional arguments but 3 were given"),
])
def test_wrong_arguments_are_a_type_error(make, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        make()


def test_value_classes_compile_nothing_per_class() -> None:
    # dataclass(frozen=True) compiles __init__, __setattr__, __delattr__ (and __eq__,
    # __hash__, __repr__) for every class: ~1 ms of every `llb` command each
    classes = [c for m in (ops, node, mounts, imagemeta) for c in vars(m).values()
               if isinstance(c, type) and issubclass(c, Value) and c is not Value]
    assert len(classes) >= 15
    for cls in classes:
        own = {"__init__", "__setattr__", "__delattr__", "__eq__", "__hash__", "__repr__"}
        assert own.isdisjoint(vars(cls)), cls
