"""The cache DB: records with leases, batch lookups, LRU order, history, checksum memo,
and the per-key locks that make concurrent solves build a vertex once."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from llb.solver.cachedb import CacheDB, lease_holder
from llb.solver.locks import KeyLock, clean_key_locks


class Leases:
    def __init__(self):
        self.held: dict[str, set[str]] = {}

    def lease(self, sid, holder):
        self.held.setdefault(sid, set()).add(holder)

    def release(self, sid, holder):
        self.held[sid].discard(holder)


def test_records_round_trip_with_leases_and_lru_order(tmp_path: Path):
    store = Leases()
    db = CacheDB(tmp_path)
    db.add(store, "sha256:k1", "sha256:v1", ["s1", None], "mkfile /a", 10)
    time.sleep(0.01)
    db.add(store, "sha256:k2", "sha256:v2", ["s2"], "merge (2 inputs)", 20)
    assert store.held == {"s1": {lease_holder("sha256:k1")}, "s2": {lease_holder("sha256:k2")}}
    assert db.lookup_many(["sha256:k1", "sha256:k2", "sha256:nope"]) == {
        "sha256:k1": ("s1", None), "sha256:k2": ("s2",)}
    assert [r.key for r in db.records()] == ["sha256:k1", "sha256:k2"]
    db.touch_many(["sha256:k1"])
    assert [r.key for r in db.records()] == ["sha256:k2", "sha256:k1"]
    # replacing a record moves the lease
    db.add(store, "sha256:k1", "sha256:v1", ["s3"], "mkfile /a", 5)
    assert store.held["s1"] == set() and store.held["s3"] == {lease_holder("sha256:k1")}
    assert db.remove(store, ["sha256:k1", "sha256:missing"]) == 1
    assert store.held["s3"] == set() and db.lookup("sha256:k1") is None
    db.close()
    again = CacheDB(tmp_path)  # persisted
    assert again.lookup("sha256:k2") == ("s2",)
    again.close()


def test_lookup_many_batches_beyond_the_sqlite_parameter_limit(tmp_path: Path):
    store = Leases()
    db = CacheDB(tmp_path)
    keys = [f"sha256:{i:064x}" for i in range(1500)]
    for k in keys:
        db.add(store, k, "v", [None], "d", 0)
    assert len(db.lookup_many(keys + ["sha256:x"])) == 1500
    db.touch_many(keys)
    db.close()


def test_history_and_checksum_memo(tmp_path: Path):
    db = CacheDB(tmp_path)
    ing = {"op": "blank", "source": None, "inputs": []}
    db.put_history("sha256:v", "sha256:k", ing)
    assert db.history_many(["sha256:v", "sha256:w"]) == {"sha256:v": ing}
    assert db.history_by_blanked("blank") == ing
    db.put_checksum("snap", "spec", "sha256:c")
    assert db.checksum("snap", "spec") == "sha256:c" and db.checksum("snap", "x") is None
    db.forget_checksums(keep=set())
    assert db.checksum("snap", "spec") is None
    db.close()


def test_key_lock_is_exclusive_across_threads_and_cancellable(tmp_path: Path):
    a = KeyLock(tmp_path, "sha256:" + "ab" * 32)
    assert a.acquire()
    got = []
    cancel = threading.Event()

    def waiter():
        b = KeyLock(tmp_path, "sha256:" + "ab" * 32)
        got.append(b.acquire(cancel))
        b.release()

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.1)
    assert got == []
    cancel.set()
    t.join(2)
    assert got == [False]
    a.release()
    assert not os.path.exists(a.path)  # released locks leave no file behind
    c = KeyLock(tmp_path, "sha256:" + "ab" * 32)
    assert c.acquire()
    assert clean_key_locks(tmp_path) == 0  # held: kept
    c.release()
    stale = Path(KeyLock(tmp_path, "sha256:" + "cd" * 32).path)
    stale.touch()  # as a killed process leaves it
    assert clean_key_locks(tmp_path) == 1 and not stale.exists()


def test_key_lock_waiters_survive_the_holder_unlinking(tmp_path: Path):
    key = "sha256:" + "ef" * 32
    order = []
    first = KeyLock(tmp_path, key)
    assert first.acquire()

    def waiter(i):
        lk = KeyLock(tmp_path, key)
        lk.acquire()
        order.append(("in", i))
        time.sleep(0.05)
        order.append(("out", i))
        lk.release()

    threads = [threading.Thread(target=waiter, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.1)
    first.release()
    for t in threads:
        t.join(5)
    # never two holders at once: every "in" is followed by its own "out"
    assert len(order) == 6
    for k in range(0, 6, 2):
        assert order[k][0] == "in" and order[k + 1] == ("out", order[k][1])


def test_prunes_take_turns_and_a_solver_holds_no_prune_lock(tmp_path: Path):
    from llb.solver.locks import PruneLock
    from llb.solver.solve import Solver

    with Solver(tmp_path, store=None) as _solver:  # a running solve does not hold it
        pruning = PruneLock(tmp_path)
        pruning.acquire(exclusive=True)
        got = []
        second = threading.Thread(target=lambda: (PruneLock(tmp_path).acquire(exclusive=True),
                                                  got.append(True)))
        second.start()
        time.sleep(0.1)
        assert got == []  # another prune waits for the first
        pruning.release()
        second.join(5)
        assert got == [True]
