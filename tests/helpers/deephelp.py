"""Deep trees for tests: chains of directories made through dir fds (no path is ever longer
than one name, so a chain may go past PATH_MAX), and the `no_deep_leftovers` fixture: pytest
removes old temporary directories with shutil.rmtree, which recurses once per level and
cannot remove such a tree, so a test that makes one empties its tmp_path itself; and before
pytest's own clean-up at the end of a session, the old directories it would remove (left by
an earlier run that was killed, say) are removed here without recursion."""

from __future__ import annotations

import getpass
import os
import re
import tempfile
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


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Remove what pytest's clean-up of old runs would remove (garbage-* and numbered
    directories older than the ones it keeps, none in use), iteratively: shutil.rmtree
    fails with RecursionError on a tree deeper than the recursion limit."""
    config = session.config
    if hasattr(config, "workerinput") or config.getoption("basetemp", None):
        return  # an xdist worker, or a directory the user gave: pytest removes no old runs
    root = Path(os.environ.get("PYTEST_DEBUG_TEMPROOT") or tempfile.gettempdir()) \
        / f"pytest-of-{getpass.getuser()}"
    try:
        names = os.listdir(root)
    except OSError:
        return
    numbered = sorted((int(m.group(1)), n) for n in names
                      if (m := re.fullmatch(r"pytest-(\d+)", n)))
    keep = int(config.getini("tmp_path_retention_count"))
    old = [n for _, n in numbered[:-keep] if not (root / n / ".lock").exists()] if keep else []
    for name in old + [n for n in names if n.startswith("garbage-")]:
        try:
            remove_tree(root / name)
        except OSError:
            pass  # pytest tries again, as it would have
