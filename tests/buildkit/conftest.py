import os
import sys
from pathlib import Path

import pytest
from bkhelp import LLBJSON, MISSING

sys.path.insert(0, str(Path(__file__).parent))  # tests import goldens.py beside them


@pytest.fixture(scope="session")
def have_llbjson() -> None:
    if not LLBJSON.exists():
        pytest.skip(MISSING)


@pytest.fixture(scope="session", params=["overlayfs", "native"])
def buildkitd(request, tmp_path_factory):
    """A buildkitd of this test session (one per snapshotter), started on first use."""
    from bkhelp import BUILDKITD, RUN, Daemon

    if not (BUILDKITD.exists() and RUN.exists()):
        pytest.skip(MISSING)
    if os.geteuid() != 0:
        pytest.skip("buildkitd needs root")
    daemon = Daemon(tmp_path_factory.mktemp(f"buildkitd-{request.param}"), request.param)
    yield daemon
    daemon.stop()
