"""Helpers shared by the test packages (on sys.path through pytest's `pythonpath`): whether
overlayfs can be tested here, and the `store` fixture for each snapshotter."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def overlay_reason(tmp: Path) -> str | None:
    """Why overlayfs tests must skip here (None when a real overlay mount works)."""
    if os.geteuid() != 0:
        return "overlayfs needs root"
    from llb.snapshot.mount import overlay_works

    if not overlay_works(tmp / "probe"):
        return "mount -t overlay does not work here"
    return None


@pytest.fixture(params=["overlayfs", "native"])
def store(request, tmp_path: Path):
    """A Store on a fresh root, once per snapshotter (overlay skipped where it cannot mount)."""
    from llb.snapshot import Store

    if request.param == "overlayfs":
        reason = overlay_reason(tmp_path)
        if reason:
            pytest.skip(reason)
    s = Store(tmp_path / "root", snapshotter=request.param)
    yield s
    s.close()
