"""The GC policy (solver.gc.select): which records a prune removes, least recently used
first, as `llb prune` and a future automatic GC both call it."""

from __future__ import annotations

from llb.solver.cachedb import Record
from llb.solver.gc import KEEP_DURATION, select


def _rec(key: str, size: int, last_used: float) -> Record:
    return Record(key=key, vertex="sha256:" + "0" * 64, outputs=("s",), description=key,
                  created=0.0, last_used=last_used, size=size)


RECORDS = [_rec("a", 100, 1000.0), _rec("b", 50, 2000.0), _rec("c", 10, 3000.0)]


def test_all_removes_every_record() -> None:
    assert [r.key for r in select(RECORDS, all_=True)] == ["a", "b", "c"]


def test_keep_storage_removes_least_recently_used_until_it_fits() -> None:
    assert [r.key for r in select(RECORDS, keep_storage=60)] == ["a"]
    assert [r.key for r in select(RECORDS, keep_storage=59)] == ["a", "b"]
    assert select(RECORDS, keep_storage=160) == []


def test_default_removes_records_unused_for_the_keep_duration() -> None:
    now = 2000.0 + KEEP_DURATION + 1
    assert [r.key for r in select(RECORDS, now=now)] == ["a", "b"]
    assert [r.key for r in select(RECORDS, now=now, keep_duration=10**9)] == []
