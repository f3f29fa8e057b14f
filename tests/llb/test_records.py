"""llb.records.Record: the class collections.namedtuple makes (what typing.NamedTuple
gives), built without compiling a __new__ from source."""

from __future__ import annotations

import collections
import copy
import inspect
import pickle

import pytest

from llb.records import Record


class Point(Record):
    """A point."""

    x: int
    y: str = "y"
    z: list[int] | None = None

    def twice(self) -> int:
        return self.x * 2


class Wide(Record):
    f0: int
    f1: int
    f2: int
    f3: int
    f4: int
    f5: int
    f6: int
    f7: int
    f8: int
    f9: int
    f10: int
    f11: int
    f12: int  # past the precompiled __new__s: collections.namedtuple's own


_Same = collections.namedtuple("Point", ["x", "y", "z"], defaults=["y", None])


def test_a_record_is_what_namedtuple_makes() -> None:
    p, q = Point(1), _Same(1)
    assert p == q and repr(p) == repr(q) == "Point(x=1, y='y', z=None)"
    assert str(inspect.signature(Point)) == str(inspect.signature(_Same)) == "(x, y='y', z=None)"
    assert Point._fields == Point.__match_args__ == ("x", "y", "z")
    assert Point._field_defaults == {"y": "y", "z": None}
    assert Point(x=3, z=[1]) == (3, "y", [1])
    assert p._replace(y="b") == (1, "b", None) and p._asdict() == {"x": 1, "y": "y", "z": None}
    assert Point._make([1, 2, 3]) == Point(1, 2, 3) and Point(5).twice() == 10
    assert Point.__doc__ == "A point." and Point.x.__doc__ == "Alias for field number 0"
    assert Point.__module__ == __name__ and Point.__annotations__["y"] == "str"
    assert Point.__new__.__qualname__ == "Point.__new__"
    assert pickle.loads(pickle.dumps(p)) == p and copy.copy(p) == p
    with pytest.raises(TypeError, match=r"Point.__new__\(\) missing 1 required positional "
                                        r"argument: 'x'"):
        Point()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="Expected 3 arguments, got 1"):
        Point._make([1])
    with pytest.raises(ValueError, match=r"Got unexpected field names: \['q'\]"):
        p._replace(q=1)  # type: ignore[call-arg]
    with pytest.raises(AttributeError):
        p.x = 2  # type: ignore[misc]
    assert Wide(*range(13)).f12 == 12 and Wide._fields[-1] == "f12"
