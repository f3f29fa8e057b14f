import sys
from pathlib import Path

import pytest
from bkhelp import LLBJSON, MISSING

sys.path.insert(0, str(Path(__file__).parent))  # tests import goldens.py beside them


@pytest.fixture(scope="session")
def have_llbjson() -> None:
    if not LLBJSON.exists():
        pytest.skip(MISSING)
