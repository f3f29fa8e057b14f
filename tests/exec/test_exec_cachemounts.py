"""Cache mount directories: persistence by id and the three sharing modes."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from llb.solver.cachemounts import CacheMounts
from llb.solver.errors import UnsupportedError


def test_same_id_same_dir_across_instances(tmp_path: Path):
    with CacheMounts(tmp_path).acquire("pip") as a:
        (a / "f").write_text("x")
    with CacheMounts(tmp_path).acquire("pip") as b:
        assert (b / "f").read_text() == "x"
    with CacheMounts(tmp_path).acquire("other") as c:
        assert c != a and not (c / "f").exists()
    assert a.is_relative_to(tmp_path / "cache-mounts")


def test_shared_is_used_concurrently(tmp_path: Path):
    cm = CacheMounts(tmp_path)
    with cm.acquire("c", "shared") as a, cm.acquire("c", "shared") as b:
        assert a == b


def test_private_gets_a_new_instance_when_busy(tmp_path: Path):
    cm = CacheMounts(tmp_path)
    with cm.acquire("c", "private") as a:
        with cm.acquire("c", "private") as b:
            assert a != b
    with cm.acquire("c", "private") as c:
        assert c == a


def test_locked_waits_for_the_holder(tmp_path: Path):
    cm = CacheMounts(tmp_path)
    order = []

    def second():
        with cm.acquire("c", "locked"):
            order.append("second")

    with cm.acquire("c", "locked"):
        t = threading.Thread(target=second)
        t.start()
        time.sleep(0.2)
        order.append("first done")
    t.join(5)
    assert order == ["first done", "second"]


def test_unknown_sharing_mode(tmp_path: Path):
    with pytest.raises(UnsupportedError):
        with CacheMounts(tmp_path).acquire("c", "weird"):
            pass


def test_ids_usage_and_prune_skip_what_is_in_use(tmp_path: Path):
    cm = CacheMounts(tmp_path)
    with cm.acquire("a") as a:
        (a / "f").write_bytes(b"x" * 100_000)
    with cm.acquire("b") as b:
        (b / "f").write_bytes(b"y" * 100_000)
    assert cm.ids() == sorted(["a", "b"], key=lambda i: cm.path(i).name)
    assert cm.usage("a") >= 100_000
    with cm.acquire("b", "locked") as b:
        freed = cm.prune()
        assert (b / "f").exists()
    assert freed >= 100_000
    with cm.acquire("a") as a:
        assert not (a / "f").exists()


def test_waiting_for_a_locked_cache_stops_on_cancel(tmp_path: Path):
    from llb.solver.errors import SolveCancelledError

    cm = CacheMounts(tmp_path)
    cancelled = threading.Event()
    with cm.acquire("c", "locked"):
        threading.Timer(0.2, cancelled.set).start()
        t = time.monotonic()
        with pytest.raises(SolveCancelledError):
            with cm.acquire("c", "locked", cancelled):
                pass
        assert time.monotonic() - t < 3
