import os
from pathlib import Path

import pytest

from llb.fsutil import remove_tree


@pytest.fixture(autouse=True)
def _no_deep_leftovers(tmp_path: Path):
    """Empty tmp_path after each test, whatever happened: pytest's own clean-up of old
    temporary directories (shutil.rmtree, recursive) cannot remove a tree this deep."""
    yield
    for name in os.listdir(tmp_path):
        remove_tree(tmp_path / name)
