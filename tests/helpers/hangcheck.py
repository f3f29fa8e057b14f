"""Hangs become failures that say where: a test that leaves a non-daemon thread running (which
the interpreter would wait for at exit, for ever if it is stuck) fails with that thread's
stack; a run still alive a minute after it ended (an exit hook or a thread it joins that is
stuck) prints every thread's stack and exits 1; and a run still going after
LLB_TEST_RUN_LIMIT seconds (1800; the suite takes 3-5 minutes) ends: each xdist worker
exits 1 with its stacks (printed where pytest is not capturing them; otherwise xdist names
the test it crashed in), the main process a minute later. Per-test time limits, with every
thread's stack, are pytest-timeout's (pyproject.toml)."""

from __future__ import annotations

import faulthandler
import os
import sys
import threading
import time
import traceback
from collections.abc import Iterator

import pytest

_GRACE = 5.0  # seconds a test's threads get to end after it (most end at once)
_EXIT_GRACE = 60.0  # seconds a process gets to exit after its session
_RUN_LIMIT = float(os.environ.get("LLB_TEST_RUN_LIMIT", "1800"))


def _running() -> dict[int, threading.Thread]:
    return {t.ident: t for t in threading.enumerate()
            if t.ident is not None and not t.daemon and t is not threading.main_thread()}


def _left_running(before: set[int], grace: float = _GRACE) -> list[threading.Thread]:
    """The non-daemon threads not in `before` (idents) still running after up to `grace` s."""
    deadline = time.monotonic() + grace
    while True:
        left = [t for i, t in _running().items() if i not in before and t.is_alive()]
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.02)


def _describe(threads: list[threading.Thread]) -> str:
    """Each thread's name and where it is now."""
    frames = sys._current_frames()
    parts = []
    for t in threads:
        frame = frames.get(t.ident) if t.ident is not None else None
        stack = "".join(traceback.format_stack(frame)) if frame is not None else "  (ended)\n"
        parts.append(f"thread {t.name!r}:\n{stack}")
    return "".join(parts)


@pytest.fixture(autouse=True)
def no_threads_left() -> Iterator[None]:
    """Fail the test if a non-daemon thread it started is still running after it."""
    before = set(_running())
    yield
    left = _left_running(before)
    if left:
        pytest.fail(f"{len(left)} thread(s) left running after the test:\n{_describe(left)}",
                    pytrace=False)


_deadline = 0.0  # time.monotonic() when this process's run limit is up


def pytest_configure(config: pytest.Config) -> None:
    """Past _RUN_LIMIT seconds, print every thread's stack and exit 1: each xdist worker
    then, the main process (which waits for them) _EXIT_GRACE seconds later."""
    global _deadline
    main = not hasattr(config, "workerinput")
    _deadline = time.monotonic() + _RUN_LIMIT + (_EXIT_GRACE if main else 0)
    _arm_run_limit()


def pytest_runtest_logfinish() -> None:
    """Arm the run limit again: pytest cancels faulthandler's timer whenever a test fails
    (its pytest_exception_interact)."""
    _arm_run_limit()


def _arm_run_limit() -> None:
    faulthandler.dump_traceback_later(max(_deadline - time.monotonic(), 1.0), exit=True)


def pytest_unconfigure(config: pytest.Config) -> None:
    """From here the run's main process only exits: if it has not within _EXIT_GRACE
    seconds, print every thread's stack and exit 1 (rather than hang the run). (An xdist
    worker waits here for the main process to let it go; its limit stays.)"""
    if not hasattr(config, "workerinput"):
        faulthandler.dump_traceback_later(_EXIT_GRACE, exit=True)
