"""Deep trees for tests: chains of directories made through dir fds (no path is ever longer
than one name, so a chain may go past PATH_MAX), and the `no_deep_leftovers` fixture: pytest
removes old temporary directories with shutil.rmtree, which recurses once per level and
cannot remove such a tree, so a test that makes one empties its tmp_path itself."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from llb.fsutil import remove_tree


def make_chain(top: Path, depth: int, name: str = "a", leaf: str = "f",
               data: bytes = b"") -> None:
    """top/NAME/NAME/... (depth levels, top must exist) with a file `leaf` at the bottom."""
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir(name, dir_fd=fd)
            sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = sub
        out = os.open(leaf, os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(out, data)
        os.close(out)
    finally:
        os.close(fd)


@pytest.fixture
def no_deep_leftovers(tmp_path: Path):
    """Empty tmp_path after the test, whatever happened."""
    yield
    for name in os.listdir(tmp_path):
        remove_tree(tmp_path / name)
