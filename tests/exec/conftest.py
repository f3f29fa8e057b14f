from __future__ import annotations

from pathlib import Path

import pytest
from exechelp import make_busybox_rootfs


@pytest.fixture
def busybox_rootfs(tmp_path: Path) -> Path:
    """A plain directory holding a busybox root (no snapshot store involved)."""
    return make_busybox_rootfs(tmp_path / "rootfs")
