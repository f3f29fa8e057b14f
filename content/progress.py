"""Byte progress of blob transfers: a callback `progress(digest, current, total)` called as
bytes of a blob arrive or leave (current counts from 0, or from where a resumed download
starts; total is the blob's size). Called from worker threads: keep it quick."""

from __future__ import annotations

from typing import Callable, Optional

Progress = Callable[[str, int, int], None]
OptionalProgress = Optional[Progress]


def report(progress: OptionalProgress, digest: str, current: int, total: int) -> None:
    """Call `progress` if there is one."""
    if progress is not None:
        progress(digest, current, total)
