"""Signals injected where they are hard to time: a KeyboardInterrupt (what the CLI's
handler raises) coming out of Thread.start(), which waits for the new thread to run."""

from __future__ import annotations

import threading

import pytest


def interrupt_thread_starts(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Starting a thread named `name` runs it, then raises KeyboardInterrupt in the thread
    that started it, as a signal arriving during start()'s wait does."""
    start = threading.Thread.start

    def interrupted_start(self: threading.Thread) -> None:
        start(self)
        if self.name == name:
            raise KeyboardInterrupt("SIGTERM")

    monkeypatch.setattr(threading.Thread, "start", interrupted_start)
