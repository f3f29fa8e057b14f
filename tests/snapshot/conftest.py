"""Fixtures for snapshot tests: a store of each snapshotter (the `store` fixture for both is a
plugin registered in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from llb.snapshot import Store
from storehelp import overlay_reason


@pytest.fixture
def native_store(tmp_path: Path):
    s = Store(tmp_path / "root", snapshotter="native")
    yield s
    s.close()


@pytest.fixture
def overlay_store(tmp_path: Path):
    reason = overlay_reason(tmp_path)
    if reason:
        pytest.skip(reason)
    s = Store(tmp_path / "root", snapshotter="overlayfs")
    yield s
    s.close()
